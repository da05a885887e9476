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

{{- /* Flags of every command that reads CSMS (serve, provider, sync): where CSMS is, who reads, what a volume may hold. */ -}}
{{- define "csm.csmsArgs" -}}
# The region also gives pod identity its CCE endpoint; an explicit endpoint wins.
- --region={{ .Values.csms.region }}
{{- with .Values.csms.endpoint }}
- --csms-endpoint={{ . }}
{{- end }}
{{- with .Values.csms.projectId }}
- --project-id={{ . }}
{{- end }}
- --csms-timeout={{ .Values.csms.timeout }}
- --metadata-endpoint={{ .Values.credentials.metadataEndpoint }}
{{- if .Values.podIdentity.enabled }}
- --cluster-id={{ required "podIdentity.clusterID is required with podIdentity.enabled" .Values.podIdentity.clusterID }}
{{- with .Values.podIdentity.endpoint }}
- --cce-endpoint={{ . }}
{{- end }}
{{- if .Values.podIdentity.required }}
- --require-pod-identity
{{- end }}
{{- end }}
- --namespace-policy={{ .Values.namespacePolicy }}
- --max-file-bytes={{ int .Values.volumeLimits.maxFileBytes }}
- --max-object-bytes={{ int .Values.maxObjectBytes }}
- --max-volume-bytes={{ int .Values.volumeLimits.maxVolumeBytes }}
- --jmespath-budget={{ .Values.volumeLimits.jmesPathBudget }}
- -v={{ .Values.log.verbosity }}
{{- if .Values.log.json }}
- --log-format-json
{{- end }}
{{- end -}}

{{- /* Environment of every command that reads CSMS. */ -}}
{{- define "csm.csmsEnv" -}}
- name: MALLOC_ARENA_MAX
  value: "2"
{{- if eq .Values.kubeApiTransport "http1" }}
- name: CCE_KUBE_TRANSPORT
  value: http1
{{- end }}
{{- if .Values.csms.caBundle }}
{{ include "csm.csmsCaEnv" . }}
{{- end }}
{{- end -}}
