{{- define "csm.name" -}}cce-secrets-manager{{- end -}}
{{- define "csm.labels" -}}
app.kubernetes.io/name: {{ include "csm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "csm.selector" -}}
app.kubernetes.io/name: {{ include "csm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "csm.pluginDir" -}}{{ .Values.kubeletRootDir }}/plugins/csi-secrets-store{{- end -}}
