{{/* Chart name, truncated to a DNS label. */}}
{{- define "k8s-runner.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "k8s-runner.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "k8s-runner.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "k8s-runner.selectorLabels" -}}
app.kubernetes.io/name: {{ include "k8s-runner.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "k8s-runner.labels" -}}
helm.sh/chart: {{ include "k8s-runner.chart" . }}
{{ include "k8s-runner.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: agyn
{{- end }}

{{- define "k8s-runner.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "k8s-runner.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "k8s-runner.runnerName" -}}
{{- default .Release.Name .Values.runner.name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "k8s-runner.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The one namespace the operator manages workloads in (the Runner's spec.workloadNamespace). */}}
{{- define "k8s-runner.workloadNamespace" -}}
{{- required "resources.workloadNamespace is required" .Values.resources.workloadNamespace }}
{{- end }}

{{- define "k8s-runner.grpcTokenSecretName" -}}
{{- default (printf "%s-grpc-token" (include "k8s-runner.fullname" .)) .Values.grpc.auth.tokenSecret.existingSecret }}
{{- end }}

{{- define "k8s-runner.grpcTlsDir" -}}
/etc/k8s-runner/grpc-tls
{{- end }}

{{/*
The Pod Security level workload Pods need: restricted without grants; baseline when they may
run as root or add a capability baseline allows; privileged with any other capability or
with docker (its daemon is privileged or unconfined).
*/}}
{{- define "k8s-runner.podSecurityLevel" -}}
{{- $ws := .Values.runner.workloadSecurity | default dict }}
{{- $baseline := list "AUDIT_WRITE" "CHOWN" "DAC_OVERRIDE" "FOWNER" "FSETID" "KILL" "MKNOD" "NET_BIND_SERVICE" "SETFCAP" "SETGID" "SETPCAP" "SETUID" "SYS_CHROOT" }}
{{- $level := "restricted" }}
{{- if $ws.allowRoot }}{{ $level = "baseline" }}{{ end }}
{{- range $role, $caps := ($ws.capabilities | default dict) }}
{{- range $caps }}
{{- if not (has . $baseline) }}{{ $level = "privileged" }}
{{- else if and (ne . "NET_BIND_SERVICE") (ne $level "privileged") }}{{ $level = "baseline" }}
{{- end }}
{{- end }}
{{- end }}
{{- if or (has "docker" .Values.capabilities) (.Values.runner.capabilityImplementations | default dict).docker }}
{{- $level = "privileged" }}
{{- end }}
{{- $level }}
{{- end }}

{{/* Checks that JSON Schema cannot express; called from the Deployment. */}}
{{- define "k8s-runner.validate" -}}
{{- if eq (include "k8s-runner.workloadNamespace" .) .Release.Namespace }}
{{- fail "resources.workloadNamespace must not be the release namespace: workloads may not share a namespace with the operator's Secrets" }}
{{- end }}
{{- if and (eq .Values.grpc.auth.mode "mtls") (not .Values.grpc.tls.secretName) }}
{{- fail "grpc.auth.mode=mtls needs grpc.tls.secretName: a Secret with tls.crt, tls.key and ca.crt" }}
{{- end }}
{{- end }}
