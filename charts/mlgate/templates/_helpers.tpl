{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "mlgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name used for every object of the release. */}}
{{- define "mlgate.fullname" -}}
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

{{- define "mlgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mlgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "mlgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mlgate
{{- end }}

{{- define "mlgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mlgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mlgate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "mlgate.leaseName" -}}
{{- default (include "mlgate.fullname" .) .Values.controller.leaderElection.leaseName }}
{{- end }}

{{/* The Lease of every shard: <leaseName> for one shard, <leaseName>-<i> otherwise (controller/runtime/shards.py). */}}
{{- define "mlgate.leaseNames" -}}
{{- $name := include "mlgate.leaseName" . }}
{{- $shards := int (default 1 .Values.controller.leaderElection.shards) }}
{{- if eq $shards 1 }}
{{- list $name | toJson }}
{{- else }}
{{- $names := list }}
{{- range $i := until $shards }}
{{- $names = append $names (printf "%s-%d" $name $i) }}
{{- end }}
{{- $names | toJson }}
{{- end }}
{{- end }}

{{- define "mlgate.webhookSecretName" -}}
{{- printf "%s-webhook-tls" (include "mlgate.fullname" .) }}
{{- end }}

{{- define "mlgate.webhookCertificateName" -}}
{{- printf "%s-webhook" (include "mlgate.fullname" .) }}
{{- end }}

{{/* Namespaces the webhook never sees: its own (no deadlock on itself) and kube-system. */}}
{{- define "mlgate.excludedNamespaces" -}}
{{- $excluded := list .Release.Namespace "kube-system" }}
{{- range .Values.admission.excludedNamespaces }}
{{- $excluded = append $excluded . }}
{{- end }}
{{- toJson (uniq $excluded) }}
{{- end }}

{{/* Environment shared by both containers: MLflow, S3, signing key, config paths. */}}
{{- define "mlgate.commonEnv" -}}
- name: MLFLOW_TRACKING_URI
  value: {{ .Values.mlflow.trackingUri | quote }}
{{- with .Values.mlflow.registryUri }}
- name: MLFLOW_REGISTRY_URI
  value: {{ . | quote }}
{{- end }}
{{- with .Values.aws.region }}
- name: AWS_DEFAULT_REGION
  value: {{ . | quote }}
{{- end }}
{{- with .Values.aws.endpointUrl }}
- name: AWS_ENDPOINT_URL_S3
  value: {{ . | quote }}
{{- end }}
- name: MLGATE_SIGNING_KEY_FILE
  value: /etc/mlgate/signing/{{ .Values.signingKey.key }}
- name: MLGATE_POLICY
  value: /etc/mlgate/config/policy.toml
- name: MLFLOW_DISABLE_TELEMETRY
  value: "true"
- name: PROMETHEUS_DISABLE_CREATED_SERIES
  value: "True"
{{- end }}

{{- define "mlgate.envFrom" -}}
{{- with .Values.mlflow.existingSecret }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- with .Values.aws.existingSecret }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- end }}

{{- define "mlgate.commonMounts" -}}
- name: tmp
  mountPath: /tmp
- name: config
  mountPath: /etc/mlgate/config
  readOnly: true
- name: signing-key
  mountPath: /etc/mlgate/signing
  readOnly: true
{{- end }}

{{/* Settings every webhook entry shares. Takes (dict "root" $ "caBundle" $caBundle). */}}
{{- define "mlgate.webhookCommon" -}}
{{- $root := .root -}}
admissionReviewVersions: ["v1"]
sideEffects: None
matchPolicy: Equivalent
failurePolicy: {{ $root.Values.admission.failurePolicy }}
timeoutSeconds: {{ $root.Values.admission.timeoutSeconds }}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ include "mlgate.excludedNamespaces" $root }}
clientConfig:
  service:
    name: {{ include "mlgate.fullname" $root }}
    namespace: {{ $root.Release.Namespace }}
    path: /validate
    port: 443
  {{- with .caBundle }}
  caBundle: {{ . }}
  {{- end }}
{{- end }}
