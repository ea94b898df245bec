{{- /* Resource names: the release name, or fullnameOverride. */ -}}
{{- define "keyfront.name" -}}{{ default .Release.Name .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- /* The app.kubernetes.io/name label: keyfront, or nameOverride. */ -}}
{{- define "keyfront.appName" -}}{{ default "keyfront" .Values.nameOverride | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- /* The ServiceAccount keyfront runs as: the chart's, or one made elsewhere (eksctl, Terraform). */ -}}
{{- define "keyfront.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{ default (include "keyfront.name" .) .Values.serviceAccount.name }}
{{- else -}}
{{ required "serviceAccount.name is required with serviceAccount.create=false: name the ServiceAccount keyfront runs as (for example the one eksctl made for IRSA)" .Values.serviceAccount.name }}
{{- end -}}
{{- end -}}
{{- define "keyfront.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keyfront.appName" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "keyfront.labels" -}}
{{ include "keyfront.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
