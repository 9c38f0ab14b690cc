{{/*
Transport security: TLS files come from existing Secrets (never created or inlined by this chart),
mounted read-only under /etc/carepulse/tls/<source>/, and named to the processes by CAREPULSE_* paths.
Everything here is off until a Secret name is set in the values.

carepulse.tlsSources (dict "root" $ "name" <component>) lists the Secret files a component needs:
"topics" gets Kafka's; every service gets Kafka's, Redis' and the inference client's; inference also
its server pair (and client CA); ingestion its HTTPS pair (and client CA).
*/}}
{{- define "carepulse.tlsSources" -}}
{{- $v := .root.Values -}}
{{- $name := .name -}}
{{- $out := list -}}
{{- $kt := $v.kafka.tls -}}
{{- with $kt.caSecret.name }}{{ $out = append $out (dict "vol" "kafka-ca" "secret" . "items" (list (dict "key" $kt.caSecret.key "path" "ca.crt")) "env" (dict "CAREPULSE_KAFKA_TLS_CA" "ca.crt")) }}{{ end -}}
{{- with $kt.clientSecret.name }}{{ $out = append $out (dict "vol" "kafka-client" "secret" . "items" (list (dict "key" $kt.clientSecret.certKey "path" "tls.crt") (dict "key" $kt.clientSecret.keyKey "path" "tls.key")) "env" (dict "CAREPULSE_KAFKA_TLS_CERT" "tls.crt" "CAREPULSE_KAFKA_TLS_KEY" "tls.key")) }}{{ end -}}
{{- if ne $name "topics" -}}
{{- $rt := $v.redis.tls -}}
{{- with $rt.caSecret.name }}{{ $out = append $out (dict "vol" "redis-ca" "secret" . "items" (list (dict "key" $rt.caSecret.key "path" "ca.crt")) "env" (dict "CAREPULSE_REDIS_TLS_CA" "ca.crt")) }}{{ end -}}
{{- with $rt.clientSecret.name }}{{ $out = append $out (dict "vol" "redis-client" "secret" . "items" (list (dict "key" $rt.clientSecret.certKey "path" "tls.crt") (dict "key" $rt.clientSecret.keyKey "path" "tls.key")) "env" (dict "CAREPULSE_REDIS_TLS_CERT" "tls.crt" "CAREPULSE_REDIS_TLS_KEY" "tls.key")) }}{{ end -}}
{{- $it := $v.inferenceClientTls -}}
{{- with $it.caSecret.name }}{{ $out = append $out (dict "vol" "inference-ca" "secret" . "items" (list (dict "key" $it.caSecret.key "path" "ca.crt")) "env" (dict "CAREPULSE_INFERENCE_CLIENT_TLS_CA" "ca.crt")) }}{{ end -}}
{{- with $it.clientSecret.name }}{{ $out = append $out (dict "vol" "inference-client" "secret" . "items" (list (dict "key" $it.clientSecret.certKey "path" "tls.crt") (dict "key" $it.clientSecret.keyKey "path" "tls.key")) "env" (dict "CAREPULSE_INFERENCE_CLIENT_TLS_CERT" "tls.crt" "CAREPULSE_INFERENCE_CLIENT_TLS_KEY" "tls.key")) }}{{ end -}}
{{- end -}}
{{- if or (eq $name "inference") (eq $name "ingestion") -}}
{{- $st := (index $v.services $name).tls -}}
{{- $prefix := ternary "CAREPULSE_INFERENCE_SERVER_TLS" "CAREPULSE_INGESTION_TLS" (eq $name "inference") -}}
{{- with $st.secret.name }}{{ $out = append $out (dict "vol" (printf "%s-server" $name) "secret" . "items" (list (dict "key" $st.secret.certKey "path" "tls.crt") (dict "key" $st.secret.keyKey "path" "tls.key")) "env" (dict (printf "%s_CERT" $prefix) "tls.crt" (printf "%s_KEY" $prefix) "tls.key")) }}{{ end -}}
{{- with $st.clientCASecret.name }}{{ $out = append $out (dict "vol" (printf "%s-client-ca" $name) "secret" . "items" (list (dict "key" $st.clientCASecret.key "path" "ca.crt")) "env" (dict (printf "%s_CLIENT_CA" $prefix) "ca.crt")) }}{{ end -}}
{{- end -}}
{{- toYaml (dict "sources" $out) -}}
{{- end -}}

{{/* Checks that would otherwise stop every pod at start: fail the render instead. */}}
{{- define "carepulse.securityChecks" -}}
{{- $k := .Values.kafka -}}
{{- $protocols := list "PLAINTEXT" "SSL" "SASL_SSL" "SASL_PLAINTEXT" -}}
{{- if not (has $k.securityProtocol $protocols) -}}
{{- fail (printf "kafka.securityProtocol must be one of %s" (join ", " $protocols)) -}}
{{- end -}}
{{- if and (hasPrefix "SASL_" $k.securityProtocol) (or (not $k.sasl.username) (not $k.sasl.passwordSecret.name)) -}}
{{- fail "kafka.securityProtocol SASL_* needs kafka.sasl.username and kafka.sasl.passwordSecret.name" -}}
{{- end -}}
{{- if and (not (has $k.securityProtocol (list "SSL" "SASL_SSL"))) (or $k.tls.caSecret.name $k.tls.clientSecret.name) -}}
{{- fail "kafka.tls secrets are set but kafka.securityProtocol is not SSL or SASL_SSL" -}}
{{- end -}}
{{- if and (not (hasPrefix "rediss://" .Values.redis.url)) (or .Values.redis.tls.caSecret.name .Values.redis.tls.clientSecret.name) -}}
{{- fail "redis.tls secrets are set but redis.url is not rediss://" -}}
{{- end -}}
{{- range $name := list "ingestion" "inference" -}}
{{- $t := (index $.Values.services $name).tls -}}
{{- if and $t.clientCASecret.name (not $t.secret.name) -}}
{{- fail (printf "services.%s.tls.clientCASecret needs services.%s.tls.secret" $name $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Security env of a component: (dict "root" $ "name" <component>). */}}
{{- define "carepulse.securityEnv" -}}
{{- $v := .root.Values -}}
{{- include "carepulse.securityChecks" .root -}}
- name: CAREPULSE_KAFKA_SECURITY_PROTOCOL
  value: {{ $v.kafka.securityProtocol | quote }}
{{- if has $v.kafka.securityProtocol (list "SSL" "SASL_SSL") }}
- name: CAREPULSE_KAFKA_TLS_CHECK_HOSTNAME
  value: {{ $v.kafka.tls.checkHostname | quote }}
{{- end }}
{{- if hasPrefix "SASL_" $v.kafka.securityProtocol }}
- name: CAREPULSE_KAFKA_SASL_MECHANISM
  value: {{ $v.kafka.sasl.mechanism | quote }}
- name: CAREPULSE_KAFKA_SASL_USERNAME
  value: {{ $v.kafka.sasl.username | quote }}
- name: CAREPULSE_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $v.kafka.sasl.passwordSecret.name }}
      key: {{ $v.kafka.sasl.passwordSecret.key }}
{{- end }}
{{- if ne .name "topics" }}
{{- with $v.redis.auth.username }}
- name: CAREPULSE_REDIS_USERNAME
  value: {{ . | quote }}
{{- end }}
{{- if hasPrefix "rediss://" $v.redis.url }}
- name: CAREPULSE_REDIS_TLS_CHECK_HOSTNAME
  value: {{ $v.redis.tls.checkHostname | quote }}
{{- end }}
{{- with $v.contextKeys.secret.name }}
- name: CAREPULSE_CONTEXT_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $v.contextKeys.secret.key }}
{{- end }}
{{- with $v.inferenceClientTls.serverName }}
- name: CAREPULSE_INFERENCE_CLIENT_TLS_SERVER_NAME
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- range (fromYaml (include "carepulse.tlsSources" .)).sources }}
{{- $vol := .vol }}
{{- range $var, $file := .env }}
- name: {{ $var }}
  value: {{ printf "/etc/carepulse/tls/%s/%s" $vol $file | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "carepulse.securityVolumes" -}}
{{- range (fromYaml (include "carepulse.tlsSources" .)).sources }}
- name: tls-{{ .vol }}
  secret:
    secretName: {{ .secret }}
    defaultMode: 288  # 0440: the pod's group (fsGroup) reads, nobody writes
    items:
      {{- toYaml .items | nindent 6 }}
{{- end }}
{{- end -}}

{{- define "carepulse.securityMounts" -}}
{{- range (fromYaml (include "carepulse.tlsSources" .)).sources }}
- {name: tls-{{ .vol }}, mountPath: /etc/carepulse/tls/{{ .vol }}, readOnly: true}
{{- end }}
{{- end -}}

{{/* One probe's action: (dict "path" "/livez" "https" bool "mtls" bool). */}}
{{- define "carepulse.probe" -}}
{{- if .mtls -}}
exec:
  command: ["python", "/opt/carepulse/healthcheck.py"{{ if eq .path "/livez" }}, "--live"{{ end }}]
{{- else if .https -}}
httpGet: {path: {{ .path }}, port: http, scheme: HTTPS}
{{- else -}}
httpGet: {path: {{ .path }}, port: http}
{{- end -}}
{{- end -}}
