{{/*
Service-level rollout strategies (`rollout` of a component, docs/rollouts.md): which Deployments
a component has, which pods its Service selects, and the extra Services, Ingresses and HTTPRoute
of blue/green, canary and shadow. Every define takes the component context
(dict "root" $ "name" <component name> "c" <merged values>) unless it says otherwise.
*/}}

{{/*
modelfleet.variantName: "<fullname>-<component>[-<suffix>]" in 63 characters, the suffix kept
whole. Call with (dict "root" $ "name" "ride-duration" "suffix" "canary").
*/}}
{{- define "modelfleet.variantName" -}}
{{- $base := include "modelfleet.componentName" . }}
{{- if .suffix }}
{{- printf "%s-%s" ($base | trunc (int (sub 62 (len .suffix))) | trimSuffix "-") .suffix }}
{{- else }}
{{- $base }}
{{- end }}
{{- end }}

{{/*
modelfleet.variants: the component's Deployments as a YAML list of {suffix, track, tag, scaled,
replicas}. rolling: one, no track label (the objects of a chart without rollouts). blueGreen:
blue and green, the HPA on the active colour. canary / shadow: the component's own Deployment
(track stable) and the candidate.
*/}}
{{- define "modelfleet.variants" -}}
{{- $r := .c.rollout }}
{{- if eq $r.strategy "blueGreen" }}
{{- range $color := list "blue" "green" }}
{{- $active := eq $color $r.blueGreen.activeColor }}
- suffix: {{ $color }}
  track: {{ $color }}
  tag: {{ index $r.blueGreen (printf "%sTag" $color) | quote }}
  scaled: {{ and $active $.c.autoscaling.enabled }}
  replicas: {{ ternary $.c.replicas $r.blueGreen.idleReplicas $active }}
{{- end }}
{{- else }}
- suffix: ""
  track: {{ ternary "" "stable" (eq $r.strategy "rolling") | quote }}
  tag: ""
  scaled: {{ .c.autoscaling.enabled }}
  replicas: {{ .c.replicas }}
{{- if has $r.strategy (list "canary" "shadow") }}
{{- $candidate := index $r $r.strategy }}
- suffix: {{ $r.strategy }}
  track: {{ $r.strategy }}
  tag: {{ $candidate.tag | quote }}
  scaled: false
  replicas: {{ $candidate.replicas }}
{{- end }}
{{- end }}
{{- end }}

{{/*
modelfleet.serviceTrack: the track the component's Service selects ("" = every pod): the active
colour (blueGreen), stable (canary, shadow).
*/}}
{{- define "modelfleet.serviceTrack" -}}
{{- $r := .c.rollout }}
{{- if eq $r.strategy "blueGreen" }}
{{- $r.blueGreen.activeColor }}
{{- else if has $r.strategy (list "canary" "shadow") }}
{{- print "stable" }}
{{- end }}
{{- end }}

{{/*
modelfleet.scaledDeploymentName: the Deployment the HPA / ScaledObject scales.
*/}}
{{- define "modelfleet.scaledDeploymentName" -}}
{{- $suffix := ternary .c.rollout.blueGreen.activeColor "" (eq .c.rollout.strategy "blueGreen") }}
{{- include "modelfleet.variantName" (dict "root" .root "name" .name "suffix" $suffix) }}
{{- end }}

{{/*
modelfleet.rolloutServices: the Service of the candidate track as YAML documents: -canary,
-shadow, or -preview (the inactive colour, for checks before the switch).
*/}}
{{- define "modelfleet.rolloutServices" -}}
{{- $r := .c.rollout }}
{{- if eq $r.strategy "blueGreen" }}
{{- $idle := ternary "green" "blue" (eq $r.blueGreen.activeColor "blue") }}
---
{{ include "modelfleet.service" (dict "root" .root "name" .name "c" .c "suffix" "preview" "track" $idle) }}
{{- else if has $r.strategy (list "canary" "shadow") }}
---
{{ include "modelfleet.service" (dict "root" .root "name" .name "c" .c "suffix" $r.strategy "track" $r.strategy) }}
{{- end }}
{{- end }}

{{/*
modelfleet.componentIngress: an Ingress for one component's ingressPaths with extra
annotations, the release Ingress's class, host and TLS. Call with the component context plus
"suffix", "backend" (Service name) and "annotations".
*/}}
{{- define "modelfleet.componentIngress" -}}
{{- $root := .root }}
{{- $backend := .backend }}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ include "modelfleet.variantName" (dict "root" $root "name" .name "suffix" .suffix) }}
  labels:
    {{- include "modelfleet.labels" . | nindent 4 }}
  annotations:
    {{- /* A canary Ingress inherits every other nginx annotation from the main Ingress. */}}
    {{- with ternary $root.Values.ingress.annotations (include "modelfleet.ingressAnnotations" $root | fromYaml) (eq .suffix "canary") }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- toYaml .annotations | nindent 4 }}
spec:
  ingressClassName: {{ $root.Values.ingress.className }}
  {{- if $root.Values.ingress.tlsSecretName }}
  tls:
    - secretName: {{ $root.Values.ingress.tlsSecretName }}
      {{- with $root.Values.ingress.host }}
      hosts: [{{ . | quote }}]
      {{- end }}
  {{- end }}
  rules:
    - {{- with $root.Values.ingress.host }}
      host: {{ . | quote }}
      {{- end }}
      http:
        paths:
          {{- range .c.ingressPaths }}
          - path: {{ . }}
            pathType: Prefix
            backend:
              service:
                name: {{ $backend }}
                port:
                  name: http
          {{- end }}
{{- end }}

{{/*
modelfleet.canaryAnnotations: ingress-nginx canary annotations from rollout.canary (the weight
is what `modelfleet rollout` patches step by step).
*/}}
{{- define "modelfleet.canaryAnnotations" -}}
{{- $canary := .c.rollout.canary }}
nginx.ingress.kubernetes.io/canary: "true"
nginx.ingress.kubernetes.io/canary-weight: {{ $canary.weight | quote }}
nginx.ingress.kubernetes.io/canary-weight-total: "100"
{{- with $canary.header }}
nginx.ingress.kubernetes.io/canary-by-header: {{ . | quote }}
{{- end }}
{{- if and $canary.header $canary.headerValue }}
nginx.ingress.kubernetes.io/canary-by-header-value: {{ $canary.headerValue | quote }}
{{- end }}
{{- with $canary.cookie }}
nginx.ingress.kubernetes.io/canary-by-cookie: {{ . | quote }}
{{- end }}
{{- end }}

{{/*
modelfleet.shadowAnnotations: ingress-nginx mirrors every request to the shadow Service; its
answers are discarded by nginx.
*/}}
{{- define "modelfleet.shadowAnnotations" -}}
{{- $shadow := include "modelfleet.variantName" (dict "root" .root "name" .name "suffix" "shadow") }}
nginx.ingress.kubernetes.io/mirror-target: {{ printf "http://%s.%s.svc.cluster.local:8000$request_uri" $shadow .root.Release.Namespace | quote }}
nginx.ingress.kubernetes.io/mirror-request-body: "on"
{{- end }}

{{/*
modelfleet.httpRoute: Gateway API v1 HTTPRoute splitting the component's paths between its
Service and the canary by weight; requests with the canary header (and value) all go to the canary.
*/}}
{{- define "modelfleet.httpRoute" -}}
{{- $root := .root }}
{{- $canary := .c.rollout.canary }}
{{- $gateway := $canary.gatewayApi }}
{{- $stable := include "modelfleet.componentName" . }}
{{- $candidate := include "modelfleet.variantName" (dict "root" $root "name" .name "suffix" "canary") }}
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: {{ $stable }}
  labels:
    {{- include "modelfleet.labels" . | nindent 4 }}
spec:
  parentRefs:
    - name: {{ required "rollout.canary.gatewayApi.gatewayName is required for router gatewayApi" $gateway.gatewayName }}
      {{- with $gateway.gatewayNamespace }}
      namespace: {{ . }}
      {{- end }}
  {{- with $root.Values.ingress.host }}
  hostnames: [{{ . | quote }}]
  {{- end }}
  rules:
    {{- if $canary.header }}
    - matches:
        {{- range .c.ingressPaths }}
        - path: {type: PathPrefix, value: {{ . }}}
          headers:
            - {type: Exact, name: {{ $canary.header }}, value: {{ default "always" $canary.headerValue | quote }}}
        {{- end }}
      backendRefs:
        - {name: {{ $candidate }}, port: 8000}
    {{- end }}
    - matches:
        {{- range .c.ingressPaths }}
        - path: {type: PathPrefix, value: {{ . }}}
        {{- end }}
      backendRefs:
        - {name: {{ $stable }}, port: 8000, weight: {{ sub 100 $canary.weight }}}
        - {name: {{ $candidate }}, port: 8000, weight: {{ $canary.weight }}}
{{- end }}

{{/*
modelfleet.rolloutRouting: the canary Ingress, the shadow Ingress or the HTTPRoute of a component.
*/}}
{{- define "modelfleet.rolloutRouting" -}}
{{- $r := .c.rollout }}
{{- if and .root.Values.ingress.enabled .c.ingressPaths }}
{{- if and (eq $r.strategy "canary") (eq $r.canary.router "nginx") }}
---
{{ include "modelfleet.componentIngress" (merge (dict "suffix" "canary" "backend" (include "modelfleet.variantName" (dict "root" .root "name" .name "suffix" "canary")) "annotations" (include "modelfleet.canaryAnnotations" . | fromYaml)) .) }}
{{- else if eq $r.strategy "shadow" }}
---
{{ include "modelfleet.componentIngress" (merge (dict "suffix" "" "backend" (include "modelfleet.componentName" .) "annotations" (include "modelfleet.shadowAnnotations" . | fromYaml)) .) }}
{{- end }}
{{- end }}
{{- if and (eq $r.strategy "canary") (eq $r.canary.router "gatewayApi") .c.ingressPaths }}
{{- if not (include "modelfleet.hasAPI" (dict "root" .root "api" "gateway.networking.k8s.io/v1/HTTPRoute")) }}
{{- fail (printf "components.%s.rollout.canary.router gatewayApi needs the Gateway API (gateway.networking.k8s.io/v1 HTTPRoute), which this cluster does not serve: install its CRDs and a Gateway, or use router nginx (list gateway.networking.k8s.io/v1/HTTPRoute in capabilities.apiVersions when rendering offline)" .name) }}
{{- end }}
---
{{ include "modelfleet.httpRoute" . }}
{{- end }}
{{- end }}

{{/*
modelfleet.rolloutTargets: what `modelfleet rollout` may patch, as YAML {deployments, services,
ingresses, httproutes} of names over every enabled component whose strategy is not rolling.
Call with the root context.
*/}}
{{- define "modelfleet.rolloutTargets" -}}
{{- $root := . }}
{{- $targets := dict "deployments" (list) "services" (list) "ingresses" (list) "httproutes" (list) }}
{{- range $name, $values := .Values.components }}
{{- if $values.enabled }}
{{- $c := include "modelfleet.component" (dict "root" $root "values" $values) | fromYaml }}
{{- $ctx := dict "root" $root "name" $name "c" $c }}
{{- $r := $c.rollout }}
{{- if ne $r.strategy "rolling" }}
{{- range include "modelfleet.variants" $ctx | fromYamlArray }}
{{- $_ := set $targets "deployments" (append $targets.deployments (include "modelfleet.variantName" (dict "root" $root "name" $name "suffix" .suffix))) }}
{{- end }}
{{- $_ := set $targets "services" (append $targets.services (include "modelfleet.componentName" $ctx)) }}
{{- if and (eq $r.strategy "canary") $c.ingressPaths }}
{{- if eq $r.canary.router "gatewayApi" }}
{{- $_ := set $targets "httproutes" (append $targets.httproutes (include "modelfleet.componentName" $ctx)) }}
{{- else if $root.Values.ingress.enabled }}
{{- $_ := set $targets "ingresses" (append $targets.ingresses (include "modelfleet.variantName" (dict "root" $root "name" $name "suffix" "canary"))) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $targets }}
{{- end }}
