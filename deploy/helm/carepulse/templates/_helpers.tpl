{{- define "carepulse.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "carepulse.labels" -}}
app.kubernetes.io/part-of: carepulse
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* selector labels of one component: (dict "root" $ "name" "care") */}}
{{- define "carepulse.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "carepulse.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "carepulse.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "carepulse.tag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{- define "carepulse.inferenceUrl" -}}
{{- if .Values.inferenceUrl -}}
{{- .Values.inferenceUrl -}}
{{- else -}}
{{- printf "%s-inference:8001" (include "carepulse.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Environment every CarePulse process gets; the Redis password only by reference to a Secret. */}}
{{- define "carepulse.commonEnv" -}}
- name: CAREPULSE_KAFKA_BOOTSTRAP_SERVERS
  value: {{ .Values.kafka.bootstrapServers | quote }}
- name: CAREPULSE_REDIS_URL
  value: {{ .Values.redis.url | quote }}
- name: CAREPULSE_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.auth.existingSecret }}
      key: {{ .Values.redis.auth.existingSecretPasswordKey }}
- name: CAREPULSE_TOPIC_PREFIX
  value: {{ .Values.kafka.topicPrefix | quote }}
- name: CAREPULSE_BIND_HOST
  value: "0.0.0.0"
- name: CAREPULSE_LOG_FORMAT
  value: json
- name: CAREPULSE_LOG_LEVEL
  value: {{ .Values.common.logLevel | quote }}
- name: CAREPULSE_SOURCE_NAME
  value: {{ .Values.common.sourceName | quote }}
- name: CAREPULSE_INFERENCE_URL
  value: {{ include "carepulse.inferenceUrl" . | quote }}
- name: CAREPULSE_OTLP_ENDPOINT
  value: {{ .Values.common.otlpEndpoint | quote }}
{{- range $k, $v := .Values.common.env }}
- name: {{ $k }}
  value: {{ $v | quote }}
{{- end }}
{{- end -}}
