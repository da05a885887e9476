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

{{- /* Extra CAs for the CSMS and metadata endpoints (csms.caBundle): env, mount and volume of the containers that call CSMS, when it is set. */ -}}
{{- define "csm.csmsCaEnv" -}}
- name: NODE_EXTRA_CA_CERTS
  value: /etc/cce-secrets-manager/csms-ca/ca.crt
{{- end -}}
{{- define "csm.csmsCaMount" -}}
- {name: csms-ca, mountPath: /etc/cce-secrets-manager/csms-ca, readOnly: true}
{{- end -}}
{{- define "csm.csmsCaVolume" -}}
- name: csms-ca
  configMap: {name: {{ include "csm.name" . }}-csms-ca}
{{- end -}}
