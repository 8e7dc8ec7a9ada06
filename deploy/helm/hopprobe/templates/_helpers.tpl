{{/* The release's name for its objects: the release name when it holds the chart's name, else both. */}}
{{- define "hopprobe.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* What selects the release's prober pods. */}}
{{- define "hopprobe.selectorLabels" -}}
app.kubernetes.io/component: prober
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/part-of: hopprobe
{{- end -}}

{{/* The labels on every object: the kustomize base's, and Helm's own. */}}
{{- define "hopprobe.labels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/part-of: hopprobe
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Whether the prober reads the Kubernetes API (drift or discovery). */}}
{{- define "hopprobe.readsCluster" -}}
{{- if or .Values.cluster.drift .Values.cluster.discover }}true{{ end -}}
{{- end -}}

{{- define "hopprobe.topologyConfigMap" -}}
{{- .Values.topology.existingConfigMap | default (printf "%s-topology" (include "hopprobe.fullname" .)) -}}
{{- end -}}
