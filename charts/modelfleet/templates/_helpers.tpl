{{/*
modelfleet.name: the chart name, or nameOverride.
*/}}
{{- define "modelfleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
modelfleet.fullname: the release-qualified name every resource starts with (63 characters at most,
the DNS label limit). The release name alone when it already contains the chart name.
*/}}
{{- define "modelfleet.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
modelfleet.chart: chart name and version, for the helm.sh/chart label.
*/}}
{{- define "modelfleet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
modelfleet.componentName: the name of one component's resources, "<fullname>-<component>",
cut to 63 characters. Call with (dict "root" $ "name" "ride-duration").
*/}}
{{- define "modelfleet.componentName" -}}
{{- printf "%s-%s" (include "modelfleet.fullname" .root) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
modelfleet.selectorLabels: the labels that select one component's pods (immutable in a
Deployment: never add to these). Call with (dict "root" $ "name" "ride-duration").
*/}}
{{- define "modelfleet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelfleet.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/*
modelfleet.labels: the standard app.kubernetes.io/* labels of one component's resources.
Call with (dict "root" $ "name" "ride-duration").
*/}}
{{- define "modelfleet.labels" -}}
helm.sh/chart: {{ include "modelfleet.chart" .root }}
{{ include "modelfleet.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: modelfleet
{{- end }}

{{/*
modelfleet.serviceAccountName: the ServiceAccount of one component (one per component).
Call with (dict "root" $ "name" "ride-duration").
*/}}
{{- define "modelfleet.serviceAccountName" -}}
{{- include "modelfleet.componentName" . }}
{{- end }}

{{/*
modelfleet.image: "<repository>:<tag>" with the tag defaulting to the chart's appVersion.
Call with (dict "root" $ "image" .Values.image).
*/}}
{{- define "modelfleet.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) }}
{{- end }}

{{/*
modelfleet.component: one component's settings, `default` merged under its own block (its own
keys win, lists are replaced whole). Returns YAML; use with fromYaml.
Call with (dict "root" $ "name" "ride-duration" "values" $component).
*/}}
{{- define "modelfleet.component" -}}
{{- $merged := mergeOverwrite (deepCopy .root.Values.default) (deepCopy .values) }}
{{- toYaml $merged }}
{{- end }}

{{/*
modelfleet.postgresqlHost: the database host, in-cluster or external.
*/}}
{{- define "modelfleet.postgresqlHost" -}}
{{- if .Values.postgresql.enabled }}
{{- include "modelfleet.componentName" (dict "root" . "name" "postgresql") }}
{{- else }}
{{- required "postgresql.external.host is required when postgresql.enabled is false" .Values.postgresql.external.host }}
{{- end }}
{{- end }}

{{/*
modelfleet.databaseUrl: DATABASE_URL without the password (the services read PGPASSWORD, which
asyncpg takes from the environment like libpq).
*/}}
{{- define "modelfleet.databaseUrl" -}}
{{- $pg := .Values.postgresql }}
{{- $port := ternary 5432 (int $pg.external.port) $pg.enabled }}
{{- $url := printf "postgresql://%s@%s:%d/%s" $pg.username (include "modelfleet.postgresqlHost" .) $port $pg.database }}
{{- if and (not $pg.enabled) $pg.external.options }}
{{- $url = printf "%s?%s" $url $pg.external.options }}
{{- end }}
{{- $url }}
{{- end }}

{{/*
modelfleet.natsUrl: NATS_URL, in-cluster or external.
*/}}
{{- define "modelfleet.natsUrl" -}}
{{- if .Values.nats.enabled }}
{{- printf "nats://%s:4222" (include "modelfleet.componentName" (dict "root" . "name" "nats")) }}
{{- else }}
{{- required "nats.externalUrl is required when nats.enabled is false" .Values.nats.externalUrl }}
{{- end }}
{{- end }}

{{/*
modelfleet.ports: the named container ports of a component kind, as YAML {name: port}.
*/}}
{{- define "modelfleet.ports" -}}
{{- if eq .kind "triton" }}
http: 8000
grpc: 8001
metrics: 8002
{{- else }}
http: 8000
{{- end }}
{{- end }}

{{/*
modelfleet.serviceUrl: the in-cluster base URL of a Python service component (port 8000), for
settings that name another service. Call with (dict "root" $ "name" "ride-duration").
*/}}
{{- define "modelfleet.serviceUrl" -}}
{{- printf "http://%s:8000" (include "modelfleet.componentName" .) }}
{{- end }}

{{/*
modelfleet.hasAPI: "true" when the cluster serves an optional API, given as group/version/kind
(monitoring.coreos.com/v1/ServiceMonitor): Helm's .Capabilities.APIVersions (the cluster's
discovery at install; `helm template --api-versions ...` offline), either as the kind or as its
group/version, or listed in `capabilities.apiVersions`. Call with (dict "root" $ "api" "...").
*/}}
{{- define "modelfleet.hasAPI" -}}
{{- $groupVersion := dir .api }}
{{- $assumed := default (list) .root.Values.capabilities.apiVersions }}
{{- $served := .root.Capabilities.APIVersions }}
{{- if or ($served.Has .api) ($served.Has $groupVersion) (has .api $assumed) (has $groupVersion $assumed) }}true{{ end }}
{{- end }}

{{/*
modelfleet.serviceMonitors / prometheusRules / alertmanagerConfig: "true" when the object kind
is asked for in values and the Prometheus Operator's API is there (else it is left out and
NOTES.txt says so). Call with the root context.
*/}}
{{- define "modelfleet.serviceMonitors" -}}
{{- if and .Values.monitoring.serviceMonitor.enabled (include "modelfleet.hasAPI" (dict "root" . "api" "monitoring.coreos.com/v1/ServiceMonitor")) }}true{{ end }}
{{- end }}

{{- define "modelfleet.prometheusRules" -}}
{{- if and .Values.monitoring.prometheusRule.enabled (include "modelfleet.hasAPI" (dict "root" . "api" "monitoring.coreos.com/v1/PrometheusRule")) }}true{{ end }}
{{- end }}

{{/*
modelfleet.alertmanagerConfig: "true" when the retraining alerts are routed to the classifier by
an AlertmanagerConfig: asked for, the retraining Job template and the classifier on, and the
Prometheus Operator's v1alpha1 AlertmanagerConfig API there.
*/}}
{{- define "modelfleet.alertmanagerConfig" -}}
{{- $classifier := index .Values.components .Values.classifierRetrain.component }}
{{- if and .Values.monitoring.alertmanagerConfig.enabled .Values.classifierRetrain.enabled $classifier $classifier.enabled (include "modelfleet.hasAPI" (dict "root" . "api" "monitoring.coreos.com/v1alpha1/AlertmanagerConfig")) }}true{{ end }}
{{- end }}

{{/*
modelfleet.keda: "true" when keda.enabled and KEDA's ScaledObject API is there; without the API
the streaming workers fall back to their HPA (NOTES.txt says so).
*/}}
{{- define "modelfleet.keda" -}}
{{- if and .Values.keda.enabled (include "modelfleet.hasAPI" (dict "root" . "api" "keda.sh/v1alpha1/ScaledObject")) }}true{{ end }}
{{- end }}

{{/*
modelfleet.databaseSecretName: the Secret holding the database password: postgresql.auth.
existingSecret, else the one the chart generates (templates/secret-database.yaml).
*/}}
{{- define "modelfleet.databaseSecretName" -}}
{{- default (include "modelfleet.componentName" (dict "root" . "name" "database")) .Values.postgresql.auth.existingSecret }}
{{- end }}

{{/*
modelfleet.ingressBodyBytes: the largest request body any component behind the ingress accepts,
from the settings the services size their limits by (settings.py and api.py of each):
<P>MAX_BODY_BYTES (ServiceSettings, default 1 MiB), the chatbot's MAX_UPLOAD_BYTES plus 64 KiB of
multipart framing, the classifier's MAX_IMAGE_BYTES as base64 (4/3) plus 64 KiB and 4.
*/}}
{{- define "modelfleet.ingressBodyBytes" -}}
{{- $root := . }}
{{- $largest := 1048576 }}
{{- range $name, $values := .Values.components }}
{{- if and $values.enabled $values.ingressPaths }}
{{- $settings := default (dict) $values.settings }}
{{- $limits := list }}
{{- with $settings.MAX_BODY_BYTES }}{{ $limits = append $limits (int .) }}{{ end }}
{{- with $settings.MAX_UPLOAD_BYTES }}{{ $limits = append $limits (add (int .) 65536) }}{{ end }}
{{- with $settings.MAX_IMAGE_BYTES }}{{ $limits = append $limits (add (div (mul (int .) 4) 3) 65540) }}{{ end }}
{{- range $limits }}
{{- if gt . $largest }}{{ $largest = . }}{{ end }}
{{- end }}
{{- end }}
{{- end }}
{{- $largest }}
{{- end }}

{{/*
modelfleet.ingressAnnotations: ingress.annotations over the ones the chart derives: with
ingress-nginx (className nginx), proxy-body-size at least the largest body a component behind
it accepts (nginx's default 1m answers 413 to bigger uploads before they reach a service).
*/}}
{{- define "modelfleet.ingressAnnotations" -}}
{{- $annotations := dict }}
{{- if eq .Values.ingress.className "nginx" }}
{{- $mib := div (add (int (include "modelfleet.ingressBodyBytes" .)) 1048575) 1048576 }}
{{- $_ := set $annotations "nginx.ingress.kubernetes.io/proxy-body-size" (printf "%dm" $mib) }}
{{- end }}
{{- toYaml (mergeOverwrite $annotations (default (dict) .Values.ingress.annotations)) }}
{{- end }}

{{/*
modelfleet.modelRepositoryClaim: the PersistentVolumeClaim of the model repository
(modelRepository.volume.type persistentVolumeClaim): existingClaim, else the chart's own.
*/}}
{{- define "modelfleet.modelRepositoryClaim" -}}
{{- $volume := .Values.modelRepository.volume }}
{{- if $volume.existingClaim }}
{{- $volume.existingClaim }}
{{- else if $volume.create }}
{{- include "modelfleet.componentName" (dict "root" . "name" "model-repository") }}
{{- else }}
{{- fail "modelRepository.volume.type persistentVolumeClaim needs existingClaim or create: true" }}
{{- end }}
{{- end }}

{{/*
modelfleet.sharedModelRepository: "true" when the model repository is one volume shared by every
Triton pod and the jobs (a PersistentVolumeClaim): the model builder then builds only into an
empty repository, and Triton runs in explicit model-control mode loading every model, so the
retraining job's load_model swaps a version without a restart.
*/}}
{{- define "modelfleet.sharedModelRepository" -}}
{{- if eq .Values.modelRepository.volume.type "persistentVolumeClaim" }}true{{ end }}
{{- end }}

{{/*
modelfleet.scalesPastOne: "true" when a component (merged values in .c) can run more than one
pod: an HPA whose maxReplicas is over 1, or replicas over 1.
*/}}
{{- define "modelfleet.scalesPastOne" -}}
{{- if or (and .c.autoscaling.enabled (gt (int .c.autoscaling.maxReplicas) 1)) (gt (int .c.replicas) 1) }}true{{ end }}
{{- end }}
