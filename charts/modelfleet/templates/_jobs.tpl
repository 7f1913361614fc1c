{{/*
Jobs of the chart: the classifier's retraining Job template and the `cronJobs` map. A job runs
in the image its `image` key names (modelBuilder: training and pandas; service) with the ConfigMap, database password and dependencies of its
`component` (merged over `default`); its pods carry app.kubernetes.io/component=<job name>, so
no Service or component NetworkPolicy selects them.
*/}}

{{/*
modelfleet.jobs: every job name and its values (enabled cronJobs, plus classifier-retrain for
the Job template), as YAML {name: values}.
*/}}
{{- define "modelfleet.jobs" -}}
{{- $jobs := dict }}
{{- if .Values.classifierRetrain.enabled }}
{{- $_ := set $jobs "classifier-retrain" .Values.classifierRetrain }}
{{- end }}
{{- range $name, $job := .Values.cronJobs }}
{{- if $job.enabled }}
{{- $_ := set $jobs $name $job }}
{{- end }}
{{- end }}
{{- toYaml $jobs }}
{{- end }}

{{/*
modelfleet.retrainingTrigger: "true" when the component of the context (dict with "root" and
"name") starts the classifier's retraining Jobs: it mounts the Job template and a token of its
ServiceAccount (templates/_objects.tpl) and runs with CLASSIFIER_RETRAINING_TRIGGER=kubernetes.
*/}}
{{- define "modelfleet.retrainingTrigger" -}}
{{- if and .root.Values.classifierRetrain.enabled (eq .name .root.Values.classifierRetrain.component) }}true{{ end }}
{{- end }}

{{/*
modelfleet.retrainingJobConfigMap: name of the ConfigMap holding the retraining Job template.
Call with the root context.
*/}}
{{- define "modelfleet.retrainingJobConfigMap" -}}
{{- printf "%s-job" (include "modelfleet.componentName" (dict "root" . "name" "classifier-retrain")) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
modelfleet.jobCallerPeers: NetworkPolicy `from` peers of the jobs whose component depends on
`dep`. Call with (dict "root" $ "dep" "triton").
*/}}
{{- define "modelfleet.jobCallerPeers" -}}
{{- $root := .root }}
{{- range $name, $job := include "modelfleet.jobs" $root | fromYaml }}
{{- $component := index $root.Values.components $job.component }}
{{- if and $component $component.enabled (has $.dep (default (list) $component.dependencies)) }}
- podSelector:
    matchLabels:
      {{- include "modelfleet.selectorLabels" (dict "root" $root "name" $name) | nindent 6 }}
{{- end }}
{{- end }}
{{- end }}

{{/*
modelfleet.jobSpec: the spec of a Job (also the CronJob's jobTemplate.spec).
Call with (dict "root" $ "name" <job name> "job" <job values>).
*/}}
{{- define "modelfleet.jobSpec" -}}
{{- $root := .root }}
{{- $values := required (printf "job %s: component %q is not a component" .name .job.component) (index $root.Values.components .job.component) }}
{{- $c := include "modelfleet.component" (dict "root" $root "values" $values) | fromYaml }}
{{- $owner := dict "root" $root "name" .job.component }}
{{- $ctx := dict "root" $root "name" .name "c" $c }}
{{- $volume := $root.Values.modelRepository.volume }}
{{- /* modelBuilder: the model-builder image (the training extra: pandas, scikit-learn); service:
the service image. */}}
{{- $image := ternary $root.Values.modelRepository.builder $root.Values.image (eq .job.image "modelBuilder") }}
backoffLimit: {{ .job.backoffLimit }}
activeDeadlineSeconds: {{ .job.activeDeadlineSeconds }}
ttlSecondsAfterFinished: {{ .job.ttlSecondsAfterFinished }}
template:
  metadata:
    labels:
      {{- include "modelfleet.labels" $ctx | nindent 6 }}
  spec:
    restartPolicy: Never
    # The owner component's ServiceAccount (its IRSA role); no API token in the pod.
    serviceAccountName: {{ include "modelfleet.serviceAccountName" $owner }}
    automountServiceAccountToken: false
    securityContext:
      {{- toYaml $c.podSecurityContext | nindent 6 }}
    {{- with $root.Values.imagePullSecrets }}
    imagePullSecrets:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with $c.nodeSelector }}
    nodeSelector:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with $c.tolerations }}
    tolerations:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    containers:
      - name: {{ .name }}
        image: {{ include "modelfleet.image" (dict "root" $root "image" $image) }}
        imagePullPolicy: {{ $image.pullPolicy }}
        command:
          {{- toYaml .job.command | nindent 10 }}
        envFrom:
          - configMapRef:
              name: {{ include "modelfleet.componentName" $owner }}
        env:
          # The model repository is $MODELFLEET_HOME/model-repository (services/stack/settings.py).
          - {name: MODELFLEET_HOME, value: /data}
          {{- if has "postgresql" (default (list) $c.dependencies) }}
          - name: PGPASSWORD
            valueFrom:
              secretKeyRef:
                name: {{ include "modelfleet.databaseSecretName" $root }}
                key: {{ $root.Values.postgresql.auth.secretKey }}
          {{- end }}
          {{- range $key, $value := .job.env }}
          - {name: {{ $key }}, value: {{ $value | quote }}}
          {{- end }}
        resources:
          {{- toYaml .job.resources | nindent 10 }}
        securityContext:
          {{- toYaml $c.securityContext | nindent 10 }}
        volumeMounts:
          - {name: tmp, mountPath: /tmp}
          - {name: models, mountPath: /data/model-repository}
          {{- range .job.volumeClaims }}
          - {name: {{ .name }}, mountPath: {{ .mountPath }}, readOnly: true}
          {{- end }}
    volumes:
      - name: tmp
        emptyDir: {sizeLimit: 256Mi}
      # Triton's model repository: shared only when it is a persistentVolumeClaim.
      - name: models
        {{- if eq $volume.type "persistentVolumeClaim" }}
        persistentVolumeClaim:
          claimName: {{ include "modelfleet.modelRepositoryClaim" $root }}
        {{- else }}
        emptyDir: {sizeLimit: {{ $volume.sizeLimit }}}
        {{- end }}
      # The job's own claims (e.g. the PDFs of documents-ingest), read-only.
      {{- range .job.volumeClaims }}
      - name: {{ .name }}
        persistentVolumeClaim: {claimName: {{ .claimName }}, readOnly: true}
      {{- end }}
{{- end }}

{{/*
modelfleet.jobNetworkPolicy: DNS and the owner component's dependencies; no ingress.
Call with (dict "root" $ "name" <job name> "job" <job values>).
*/}}
{{- define "modelfleet.jobNetworkPolicy" -}}
{{- $root := .root }}
{{- $ctx := dict "root" $root "name" .name }}
{{- $component := index $root.Values.components .job.component }}
{{- $deps := default (list) $component.dependencies }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "modelfleet.componentName" $ctx }}
  labels:
    {{- include "modelfleet.labels" $ctx | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "modelfleet.selectorLabels" $ctx | nindent 6 }}
  policyTypes: [Ingress, Egress]
  egress:
    {{- include "modelfleet.dnsEgress" . | nindent 4 }}
    {{- range $deps }}
    {{- include "modelfleet.egressTo" (dict "root" $root "dep" .) | nindent 4 }}
    {{- end }}
    {{- if and (or (has "postgresql" $deps) (has "nats" $deps)) $root.Values.networkPolicy.externalEgress }}
    {{- toYaml $root.Values.networkPolicy.externalEgress | nindent 4 }}
    {{- end }}
{{- end }}
