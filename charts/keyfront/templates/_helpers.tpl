{{- define "keyfront.name" -}}{{ .Release.Name }}{{- end -}}
{{- define "keyfront.labels" -}}
app.kubernetes.io/name: keyfront
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
