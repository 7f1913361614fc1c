{{/*
The objects of one component, rendered by templates/components.yaml for each enabled entry of
`components` (opentelemetry-demo style). Every define takes a context
(dict "root" $ "name" <component name> "c" <component values merged over `default`>).
*/}}

{{/*
modelfleet.callers: the enabled components that list this one in their dependencies, as YAML list.
*/}}
{{- define "modelfleet.callers" -}}
{{- $callers := list }}
{{- range $name, $values := .root.Values.components }}
{{- if and $values.enabled (has $.name (default (list) $values.dependencies)) }}
{{- $callers = append $callers $name }}
{{- end }}
{{- end }}
{{- toYaml $callers }}
{{- end }}

{{- define "modelfleet.serviceAccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "modelfleet.serviceAccountName" . }}
  labels:
    {{- include "modelfleet.labels" . | nindent 4 }}
  {{- with .c.serviceAccountAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
# The services never call the Kubernetes API, so the token is not mounted. Only the classifier's
# account has RBAC (templates/jobs.yaml: it may create the retraining Jobs).
automountServiceAccountToken: false
{{- end }}

{{- define "modelfleet.configMap" -}}
{{- $root := .root }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "modelfleet.componentName" . }}
  labels:
    {{- include "modelfleet.labels" . | nindent 4 }}
data:
  {{- if eq .c.kind "service" }}
  # Shared names of services/common/settings.py (no prefix).
  DATABASE_URL: {{ include "modelfleet.databaseUrl" $root | quote }}
  NATS_URL: {{ include "modelfleet.natsUrl" $root | quote }}
  TRITON_GRPC_URL: {{ printf "%s:8001" (include "modelfleet.componentName" (dict "root" $root "name" "triton")) | quote }}
  # Authentication (services/common/security; AUTH_API_KEY_PEPPER comes from a Secret).
  AUTH_MODE: {{ $root.Values.auth.mode | quote }}
  AUTH_JWKS_URL: {{ $root.Values.auth.jwksUrl | quote }}
  AUTH_ISSUER: {{ $root.Values.auth.issuer | quote }}
  AUTH_AUDIENCE: {{ $root.Values.auth.audience | quote }}
  AUTH_SCOPE_PREFIX: {{ $root.Values.auth.scopePrefix | quote }}
  {{ .c.envPrefix }}ENVIRONMENT: {{ $root.Values.config.environment | quote }}
  {{- range $key, $value := .c.settings }}
  {{ $.c.envPrefix }}{{ $key }}: {{ tpl ($value | toString) $root | quote }}
  {{- end }}
  {{- end }}
  {{- range $key, $value := .c.env }}
  {{ $key }}: {{ $value | toString | quote }}
  {{- end }}
{{- end }}

{{- define "modelfleet.securityContexts" -}}
securityContext:
  {{- toYaml .c.securityContext | nindent 2 }}
{{- end }}

{{/*
modelfleet.deployment: one Deployment of a component; `.variant` (modelfleet.variants in
_rollout.tpl) says which: the component's own, a blue/green colour, the canary or the shadow.
*/}}
{{- define "modelfleet.deployment" -}}
{{- $root := .root }}
{{- $v := .variant }}
{{- $ports := include "modelfleet.ports" (dict "kind" .c.kind) | fromYaml }}
{{- $usesDatabase := has "postgresql" (default (list) .c.dependencies) }}
{{- $image := ternary .c.image $root.Values.image (or (eq .c.kind "triton") (eq .c.kind "llm")) }}
{{- if $v.tag }}
{{- $image = merge (dict "tag" $v.tag) $image }}
{{- end }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "modelfleet.variantName" (dict "root" $root "name" .name "suffix" $v.suffix) }}
  labels:
    {{- include "modelfleet.labels" . | nindent 4 }}
    {{- with $v.track }}
    modelfleet.io/track: {{ . }}
    {{- end }}
  {{- if or (eq .c.kind "triton") $usesDatabase (eq .c.kind "service") }}
  # Justified checkov skips (tests/chart/test_checkov.py runs checkov on the rendered chart).
  annotations:
    {{- if eq .c.kind "triton" }}
    checkov.io/skip1: CKV_K8S_40=NVIDIA's Triton image runs as its own non-root user 1000
    {{- end }}
    {{- if $usesDatabase }}
    checkov.io/skip2: CKV_K8S_35=asyncpg reads the DB password from PGPASSWORD (libpq convention)
    {{- else if eq .c.kind "service" }}
    checkov.io/skip2: CKV_K8S_35=the settings class reads AUTH_API_KEY_PEPPER from the environment
    {{- end }}
  {{- end }}
spec:
  {{- if not $v.scaled }}
  replicas: {{ $v.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  # Readiness-gated rolling update (rollout.rolling): new pods take traffic once /readyz answers.
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: {{ .c.rollout.rolling.maxSurge }}
      maxUnavailable: {{ .c.rollout.rolling.maxUnavailable }}
  minReadySeconds: {{ .c.rollout.rolling.minReadySeconds }}
  selector:
    matchLabels:
      {{- include "modelfleet.selectorLabels" . | nindent 6 }}
      {{- if $v.suffix }}
      modelfleet.io/track: {{ $v.track }}
      {{- end }}
  template:
    metadata:
      labels:
        {{- include "modelfleet.labels" . | nindent 8 }}
        {{- with $v.track }}
        modelfleet.io/track: {{ . }}
        {{- end }}
      annotations:
        checksum/config: {{ include "modelfleet.configMap" . | sha256sum }}
        {{- with .c.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "modelfleet.serviceAccountName" . }}
      automountServiceAccountToken: false
      securityContext:
        {{- toYaml .c.podSecurityContext | nindent 8 }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .c.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- range . }}
        - labelSelector:
            matchLabels:
              {{- include "modelfleet.selectorLabels" $ | nindent 14 }}
          {{- toYaml . | nindent 10 }}
        {{- end }}
      {{- end }}
      {{- with .c.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .c.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .c.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if eq .c.kind "triton" }}
      initContainers:
        {{- if eq $root.Values.modelRepository.source "s3" }}
        {{- $s3 := $root.Values.modelRepository.s3 }}
        # Copies a published model repository from S3 into the repository volume (IRSA credentials).
        - name: model-repository-s3
          image: {{ printf "%s:%s" $s3.image.repository $s3.image.tag }}
          imagePullPolicy: {{ $s3.image.pullPolicy }}
          command: [aws, s3, sync, --only-show-errors, --delete]
          args:
            - {{ required "modelRepository.s3.uri is required when modelRepository.source is s3" $s3.uri | quote }}
            - /models
          env:
            - {name: HOME, value: /tmp}
            {{- with $s3.region }}
            - {name: AWS_REGION, value: {{ . | quote }}}
            {{- end }}
          resources:
            requests: {cpu: 100m, memory: 128Mi}
            limits: {cpu: "1", memory: 512Mi}
          {{- include "modelfleet.securityContexts" . | nindent 10 }}
          volumeMounts:
            - {name: models, mountPath: /models}
            - {name: tmp, mountPath: /tmp}
        {{- else }}
        # Trains and exports the models into the repository volume (Dockerfile target model-builder).
        - name: model-builder
          image: {{ include "modelfleet.image" (dict "root" $root "image" $root.Values.modelRepository.builder) }}
          imagePullPolicy: {{ $root.Values.modelRepository.builder.pullPolicy }}
          {{- if include "modelfleet.sharedModelRepository" $root }}
          # A shared repository is built once, by the first pod (the builder's per-model lock
          # keeps pods starting together from building twice); later pods and restarts find the
          # stamp and leave it (and any retrained version in it) alone.
          command:
            - sh
            - -c
            - test -e /models/.modelfleet-built || { python -m models.ride_duration "$@" && touch /models/.modelfleet-built; }
            - model-builder
          {{- end }}
          args:
            {{- toYaml $root.Values.modelRepository.builder.args | nindent 12 }}
          resources:
            {{- toYaml $root.Values.modelRepository.builder.resources | nindent 12 }}
          {{- include "modelfleet.securityContexts" . | nindent 10 }}
          volumeMounts:
            - {name: models, mountPath: /models}
            - {name: tmp, mountPath: /tmp}
        {{- end }}
      {{- end }}
      containers:
        - name: {{ .name }}
          image: {{ include "modelfleet.image" (dict "root" $root "image" $image) }}
          imagePullPolicy: {{ $image.pullPolicy }}
          {{- if eq .c.kind "triton" }}
          command: [tritonserver]
          args:
            - --model-repository=/models
            - --http-port=8000
            - --grpc-port=8001
            - --metrics-port=8002
            {{- if and (include "modelfleet.sharedModelRepository" $root) (not (regexMatch "--model-control-mode" (join " " (default (list) .c.extraArgs)))) }}
            # A shared repository: every model loaded at start, new versions through load_model
            # (the retraining job's call).
            - --model-control-mode=explicit
            - --load-model=*
            {{- end }}
            {{- range .c.extraArgs }}
            - {{ . | quote }}
            {{- end }}
          {{- else if eq .c.kind "llm" }}
          # llama.cpp's OpenAI-compatible server (docs/decisions.md, decision 52); --metrics:
          # its Prometheus metrics on the same port.
          command: [/app/llama-server]
          args:
            - --model
            - {{ printf "/models/%s" .c.llm.modelFile | quote }}
            - --alias
            - {{ .c.llm.alias | quote }}
            - --host
            - 0.0.0.0
            - --port
            - "8000"
            - --ctx-size
            - {{ .c.llm.contextSize | quote }}
            - --threads
            - {{ .c.llm.threads | quote }}
            - --metrics
            {{- range .c.extraArgs }}
            - {{ . | quote }}
            {{- end }}
          {{- else }}
          command:
            {{- toYaml .c.command | nindent 12 }}
          {{- end }}
          ports:
            {{- range $name, $port := $ports }}
            - name: {{ $name }}
              containerPort: {{ $port }}
              protocol: TCP
            {{- end }}
          envFrom:
            - configMapRef:
                name: {{ include "modelfleet.componentName" . }}
          {{- $usesPostgres := has "postgresql" (default (list) .c.dependencies) }}
          {{- if or $usesPostgres .c.secretEnv (eq .c.kind "service") }}
          env:
            {{- if eq .c.kind "service" }}
            # HMAC key of stored API key hashes (optional: a fixed one without the Secret).
            - name: AUTH_API_KEY_PEPPER
              valueFrom:
                secretKeyRef:
                  name: {{ $root.Values.auth.apiKeyPepper.existingSecret }}
                  key: {{ $root.Values.auth.apiKeyPepper.secretKey }}
                  optional: true
            {{- end }}
            {{- if $usesPostgres }}
            # asyncpg reads PGPASSWORD like libpq: DATABASE_URL carries no password.
            - name: PGPASSWORD
              valueFrom:
                secretKeyRef:
                  name: {{ include "modelfleet.databaseSecretName" $root }}
                  key: {{ $root.Values.postgresql.auth.secretKey }}
            {{- end }}
            {{- if include "modelfleet.retrainingTrigger" . }}
            # POST /v1/alerts starts retraining Jobs from the mounted template (ClassifierSettings).
            - {name: CLASSIFIER_RETRAINING_TRIGGER, value: kubernetes}
            - {name: CLASSIFIER_RETRAINING_JOB_TEMPLATE, value: /etc/modelfleet/retraining/job.yaml}
            {{- end }}
            {{- range $name, $ref := .c.secretEnv }}
            - name: {{ $name }}
              valueFrom:
                secretKeyRef:
                  name: {{ $ref.secret }}
                  key: {{ $ref.key }}
                  optional: {{ $ref.optional | default false }}
            {{- end }}
          {{- end }}
          {{- if eq .c.kind "triton" }}
          startupProbe:
            httpGet: {path: /v2/health/live, port: http}
            periodSeconds: 5
            failureThreshold: 60
          livenessProbe:
            httpGet: {path: /v2/health/live, port: http}
            periodSeconds: 10
            timeoutSeconds: 2
            failureThreshold: 3
          # Per model, not server-wide: /v2/health/ready answers 400 during any model reload.
          readinessProbe:
            httpGet: {path: {{ printf "/v2/models/%s/ready" (first .c.models) }}, port: http}
            periodSeconds: 5
            timeoutSeconds: 2
            failureThreshold: 3
          {{- else if eq .c.kind "llm" }}
          # /health answers 503 while the model loads, 200 once it serves.
          startupProbe:
            httpGet: {path: /health, port: http}
            periodSeconds: 5
            failureThreshold: 60
          livenessProbe:
            tcpSocket: {port: http}
            periodSeconds: 10
            timeoutSeconds: 2
            failureThreshold: 3
          readinessProbe:
            httpGet: {path: /health, port: http}
            periodSeconds: 5
            timeoutSeconds: 2
            failureThreshold: 3
          {{- else }}
          startupProbe:
            httpGet: {path: /healthz, port: http}
            periodSeconds: 2
            failureThreshold: 30
          livenessProbe:
            httpGet: {path: /healthz, port: http}
            periodSeconds: 10
            timeoutSeconds: 2
            failureThreshold: 3
          readinessProbe:
            httpGet: {path: /readyz, port: http}
            periodSeconds: 5
            timeoutSeconds: 2
            failureThreshold: 3
          {{- end }}
          resources:
            {{- toYaml .c.resources | nindent 12 }}
          {{- include "modelfleet.securityContexts" . | nindent 10 }}
          volumeMounts:
            - {name: tmp, mountPath: /tmp}
            {{- if eq .c.kind "triton" }}
            - {name: models, mountPath: /models}
            {{- end }}
            {{- if eq .c.kind "llm" }}
            - {name: models, mountPath: /models, readOnly: true}
            {{- end }}
            {{- if include "modelfleet.retrainingTrigger" . }}
            - {name: retraining-job, mountPath: /etc/modelfleet/retraining, readOnly: true}
            - {name: kube-api-access, mountPath: /var/run/secrets/kubernetes.io/serviceaccount, readOnly: true}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir: {sizeLimit: 256Mi}
        {{- if eq .c.kind "triton" }}
        - name: models
          {{- if eq $root.Values.modelRepository.volume.type "persistentVolumeClaim" }}
          persistentVolumeClaim:
            claimName: {{ include "modelfleet.modelRepositoryClaim" $root }}
          {{- else }}
          emptyDir: {sizeLimit: {{ $root.Values.modelRepository.volume.sizeLimit }}}
          {{- end }}
        {{- end }}
        {{- if eq .c.kind "llm" }}
        # The GGUF file: a volume claim someone filled (nothing is downloaded at run time).
        - name: models
          persistentVolumeClaim:
            claimName: {{ required "components.llm.llm.modelClaim is required" .c.llm.modelClaim }}
            readOnly: true
        {{- end }}
        {{- if include "modelfleet.retrainingTrigger" . }}
        # The retraining trigger's Job template, and the only API token of the chart: projected
        # for this container alone (automountServiceAccountToken stays false), bound to the
        # Role of templates/jobs.yaml (create/get Jobs).
        - name: retraining-job
          configMap:
            name: {{ include "modelfleet.retrainingJobConfigMap" $root }}
        - name: kube-api-access
          projected:
            sources:
              - serviceAccountToken: {path: token, expirationSeconds: 3607}
              - configMap:
                  name: kube-root-ca.crt
                  items: [{key: ca.crt, path: ca.crt}]
              - downwardAPI:
                  items: [{path: namespace, fieldRef: {fieldPath: metadata.namespace}}]
        {{- end }}
{{- end }}

{{/*
modelfleet.service: the component's Service, or with "suffix" and "track" in the context one of
its rollout Services (<name>-canary, -shadow, -preview) selecting that track's pods only.
*/}}
{{- define "modelfleet.service" -}}
{{- $track := ternary .track (include "modelfleet.serviceTrack" .) (hasKey . "track") }}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "modelfleet.variantName" (dict "root" .root "name" .name "suffix" (default "" .suffix)) }}
  labels:
    {{- include "modelfleet.labels" . | nindent 4 }}
    {{- with $track }}
    modelfleet.io/track: {{ . }}
    {{- end }}
spec:
  type: ClusterIP
  selector:
    {{- include "modelfleet.selectorLabels" . | nindent 4 }}
    {{- with $track }}
    modelfleet.io/track: {{ . }}
    {{- end }}
  ports:
    {{- range $name, $port := include "modelfleet.ports" (dict "kind" .c.kind) | fromYaml }}
    - name: {{ $name }}
      port: {{ $port }}
      targetPort: {{ $name }}
      protocol: TCP
    {{- end }}
{{- end }}

{{- define "modelfleet.hpa" -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "modelfleet.componentName" . }}
  labels:
    {{- include "modelfleet.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "modelfleet.scaledDeploymentName" . }}
  minReplicas: {{ .c.autoscaling.minReplicas }}
  maxReplicas: {{ .c.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .c.autoscaling.targetCPUUtilizationPercentage }}
    {{- with .c.autoscaling.extraMetrics }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/*
modelfleet.scaledObject: KEDA scales a streaming worker on CPU and on its durable JetStream
consumer's lag (KEDA creates and owns the HPA).
*/}}
{{- define "modelfleet.scaledObject" -}}
{{- $root := .root }}
{{- $endpoint := $root.Values.keda.natsMonitoringEndpoint }}
{{- if not $endpoint }}
{{- $endpoint = printf "%s.%s.svc.cluster.local:8222" (include "modelfleet.componentName" (dict "root" $root "name" "nats")) $root.Release.Namespace }}
{{- end }}
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {{ include "modelfleet.componentName" . }}
  labels:
    {{- include "modelfleet.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    name: {{ include "modelfleet.scaledDeploymentName" . }}
  minReplicaCount: {{ .c.autoscaling.minReplicas }}
  maxReplicaCount: {{ .c.autoscaling.maxReplicas }}
  triggers:
    - type: cpu
      metricType: Utilization
      metadata:
        value: {{ .c.autoscaling.targetCPUUtilizationPercentage | quote }}
    - type: nats-jetstream
      metadata:
        natsServerMonitoringEndpoint: {{ $endpoint | quote }}
        account: "$G"
        stream: RIDES
        consumer: {{ .c.autoscaling.jetstreamConsumer | quote }}
        lagThreshold: {{ .c.autoscaling.lagThreshold | quote }}
{{- end }}

{{- define "modelfleet.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "modelfleet.componentName" . }}
  labels:
    {{- include "modelfleet.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .c.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "modelfleet.selectorLabels" . | nindent 6 }}
{{- end }}

{{- define "modelfleet.serviceMonitor" -}}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "modelfleet.componentName" . }}
  labels:
    {{- include "modelfleet.labels" . | nindent 4 }}
    release: {{ .root.Values.monitoring.release | quote }}
spec:
  # job="<component>" (ride-duration, triton) whatever the release name: the rules rely on it.
  jobLabel: app.kubernetes.io/component
  namespaceSelector:
    matchNames: [{{ .root.Release.Namespace }}]
  selector:
    matchLabels:
      {{- include "modelfleet.selectorLabels" . | nindent 6 }}
  endpoints:
    - port: {{ ternary "metrics" "http" (eq .c.kind "triton") }}
      path: /metrics
      interval: {{ .root.Values.monitoring.serviceMonitor.interval }}
{{- end }}

{{/*
modelfleet.egressTo: one NetworkPolicy egress rule to a dependency (a component, postgresql, nats).
Call with (dict "root" $ "dep" "triton").
*/}}
{{- define "modelfleet.egressTo" -}}
{{- $root := .root }}
{{- if eq .dep "postgresql" }}
{{- if $root.Values.postgresql.enabled }}
- to:
    - podSelector:
        matchLabels:
          {{- include "modelfleet.selectorLabels" (dict "root" $root "name" "postgresql") | nindent 10 }}
  ports:
    - {port: 5432, protocol: TCP}
{{- end }}
{{- else if eq .dep "nats" }}
{{- if $root.Values.nats.enabled }}
- to:
    - podSelector:
        matchLabels:
          {{- include "modelfleet.selectorLabels" (dict "root" $root "name" "nats") | nindent 10 }}
  ports:
    - {port: 4222, protocol: TCP}
{{- end }}
{{- else }}
{{- $dep := required (printf "dependency %q is not a component" .dep) (index $root.Values.components .dep) }}
- to:
    - podSelector:
        matchLabels:
          {{- include "modelfleet.selectorLabels" (dict "root" $root "name" .dep) | nindent 10 }}
  ports:
    {{- if eq (default "service" $dep.kind) "triton" }}
    - {port: 8001, protocol: TCP}
    {{- else }}
    - {port: 8000, protocol: TCP}
    {{- end }}
{{- end }}
{{- end }}

{{- define "modelfleet.dnsEgress" -}}
- to:
    - namespaceSelector: {}
      podSelector:
        matchLabels:
          k8s-app: kube-dns
  ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
{{- end }}

{{- define "modelfleet.networkPolicy" -}}
{{- $root := .root }}
{{- $callers := include "modelfleet.callers" . | fromYamlArray }}
{{- $triton := eq .c.kind "triton" }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "modelfleet.componentName" . }}
  labels:
    {{- include "modelfleet.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "modelfleet.selectorLabels" . | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress:
    # Its callers and the helm test Pod.
    - from:
        {{- range $callers }}
        - podSelector:
            matchLabels:
              {{- include "modelfleet.selectorLabels" (dict "root" $root "name" .) | nindent 14 }}
        {{- end }}
        {{- include "modelfleet.jobCallerPeers" (dict "root" $root "dep" .name) | nindent 8 }}
        - podSelector:
            matchLabels:
              {{- include "modelfleet.selectorLabels" (dict "root" $root "name" "test") | nindent 14 }}
      ports:
        - {port: {{ ternary 8001 8000 $triton }}, protocol: TCP}
        {{- if $triton }}
        - {port: 8000, protocol: TCP}
        {{- end }}
    {{- if .c.ingressPaths }}
    # The ingress controller.
    - from:
        {{- toYaml $root.Values.networkPolicy.ingressFrom | nindent 8 }}
      ports:
        - {port: 8000, protocol: TCP}
    {{- end }}
    # Prometheus scraping /metrics.
    - from:
        {{- toYaml $root.Values.networkPolicy.prometheusFrom | nindent 8 }}
      ports:
        - {port: {{ ternary 8002 8000 $triton }}, protocol: TCP}
  egress:
    {{- include "modelfleet.dnsEgress" . | nindent 4 }}
    {{- range (default (list) .c.dependencies) }}
    {{- include "modelfleet.egressTo" (dict "root" $root "dep" .) | nindent 4 }}
    {{- end }}
    {{- if and $triton (eq $root.Values.modelRepository.source "s3") }}
    {{- toYaml $root.Values.modelRepository.s3.egress | nindent 4 }}
    {{- end }}
    {{- with .c.extraEgress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- if and (eq .c.kind "service") (eq $root.Values.auth.mode "jwt") }}
    # The identity provider's JWKS (AUTH_MODE=jwt).
    {{- toYaml $root.Values.auth.jwksEgress | nindent 4 }}
    {{- end }}
    {{- if and (or (has "postgresql" (default (list) .c.dependencies)) (has "nats" (default (list) .c.dependencies))) $root.Values.networkPolicy.externalEgress }}
    {{- toYaml $root.Values.networkPolicy.externalEgress | nindent 4 }}
    {{- end }}
{{- end }}
