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

{{/* The prober pod, for the Deployment and, with shards, the StatefulSet. */}}
{{- define "hopprobe.podTemplate" -}}
metadata:
  labels:
    {{- include "hopprobe.selectorLabels" . | nindent 4 }}
  {{- if not .Values.topology.existingConfigMap }}
  annotations:
    # A changed topology rolls the pods (kustomize does it by the
    # ConfigMap's hashed name); the prober also reloads a changed file.
    checksum/topology: {{ .Values.topology.inline | default (.Files.Get "files/allinx.yaml") | sha256sum }}
  {{- end }}
spec:
  serviceAccountName: {{ include "hopprobe.fullname" . }}
  automountServiceAccountToken: {{ include "hopprobe.readsCluster" . | eq "true" }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    fsGroup: 65532
    seccompProfile:
      type: RuntimeDefault
  topologySpreadConstraints:
    - maxSkew: 1
      topologyKey: kubernetes.io/hostname
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "hopprobe.selectorLabels" . | nindent 10 }}
  containers:
    - name: probe
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - serve
        - --config=/etc/hopprobe/{{ .Values.topology.key }}
        - --vantage={{ .Values.vantage }}
        - --listen=:{{ .Values.port }}
        - --replicas-dns={{ include "hopprobe.fullname" . }}-replicas
        {{- if gt (int .Values.shards) 1 }}
        - --shard=ordinal/{{ .Values.shards }}
        {{- end }}
        {{- if include "hopprobe.readsCluster" . }}
        - --cluster
        {{- end }}
        {{- if .Values.cluster.discover }}
        - --discover
        {{- end }}
        {{- range .Values.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      ports:
        - name: http-metrics
          containerPort: {{ .Values.port }}
          protocol: TCP
      env:
        {{- range .Values.storeCredentials.env }}
        - name: {{ .name }}
          valueFrom:
            secretKeyRef: {name: {{ $.Values.storeCredentials.secretName }}, key: {{ .key }}}
        {{- end }}
        - name: GOMEMLIMIT
          valueFrom:
            resourceFieldRef: {resource: limits.memory, divisor: "1"}
        # This replica's place among --replicas-dns's answers.
        - name: POD_IP
          valueFrom:
            fieldRef: {fieldPath: status.podIP}
      readinessProbe:
        httpGet: {path: /readyz, port: http-metrics}
        periodSeconds: 10
        failureThreshold: 3
      livenessProbe:
        httpGet: {path: /healthz, port: http-metrics}
        initialDelaySeconds: 5
        periodSeconds: 20
        failureThreshold: 3
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        runAsNonRoot: true
        privileged: false
        capabilities:
          drop: ["ALL"]
        seccompProfile:
          type: RuntimeDefault
      volumeMounts:
        - name: topology
          mountPath: /etc/hopprobe
          readOnly: true
  volumes:
    - name: topology
      configMap:
        name: {{ include "hopprobe.topologyConfigMap" . }}
{{- end -}}
