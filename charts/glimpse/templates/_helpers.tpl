{{- define "glimpse.labels" -}}
app.kubernetes.io/name: glimpse
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "glimpse.operator.selector" -}}
app.kubernetes.io/name: glimpse
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "glimpse.proxy.selector" -}}
app.kubernetes.io/name: glimpse
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: proxy
{{- end -}}

{{- define "glimpse.operator.name" -}}{{ .Release.Name }}-operator{{- end -}}
{{- define "glimpse.proxy.name" -}}{{ .Release.Name }}-proxy{{- end -}}

{{- define "glimpse.image" -}}
{{- $image := index . 0 -}}{{- $chart := index . 1 -}}
{{ $image.repository }}:{{ $image.tag | default $chart.AppVersion }}
{{- end -}}

{{- define "glimpse.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "glimpse.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}
