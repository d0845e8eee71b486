{{/*
Labels on every object: the name deploy/ uses (Services, the NetworkPolicy and the PodDisruptionBudget
select the Pods by it) and Helm's recommended ones.
*/}}
{{- define "certsmith.labels" -}}
app.kubernetes.io/name: certsmith
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/*
The operator's own default for the namespaces of its Lease and of ClusterIssuers' CA Secrets; the
Deployment passes the flags only when the release's namespace differs, so that the default rendering
matches deploy/install.yaml.
*/}}
{{- define "certsmith.operatorNamespace" -}}
certsmith
{{- end }}

{{/* The operator's command-line flags, one YAML list item per line. */}}
{{- define "certsmith.args" -}}
{{- $settings := .Values.settings -}}
{{- $operatorNamespace := include "certsmith.operatorNamespace" . -}}
- --leader-elect
{{- if ne .Release.Namespace $operatorNamespace }}
- --leader-elect-namespace={{ .Release.Namespace }}
{{- end }}
- --log-format
- {{ $settings.logFormat }}
{{- if .Values.acmeSolverService }}
- --acme-solver-service
- {{ .Release.Namespace }}/certsmith-acme-solver
{{- end }}
{{- if .Values.namespaced }}
- --namespaced
{{- if not $settings.watchNamespaces }}
- --namespace={{ .Release.Namespace }}
{{- end }}
{{- end }}
{{- range $settings.watchNamespaces }}
- --namespace={{ . }}
{{- end }}
{{- $clusterResourceNamespace := $settings.clusterResourceNamespace | default .Release.Namespace }}
{{- if ne $clusterResourceNamespace $operatorNamespace }}
- --cluster-resource-namespace={{ $clusterResourceNamespace }}
{{- end }}
{{- if $settings.secretOwnerReferences }}
- --secret-owner-references
{{- end }}
{{- if not $settings.autoApprove }}
- --no-auto-approve
{{- end }}
{{- if not $settings.tlsSecretMetrics }}
- --no-tls-secret-metrics
{{- end }}
{{- if $settings.verbose }}
- --verbose
{{- end }}
{{- range $flag, $key := dict "--workers" "workers" "--backoff-initial" "backoffInitial" "--backoff-max" "backoffMax" "--max-issuances-per-hour" "maxIssuancesPerHour" "--acme-orders-per-hour" "acmeOrdersPerHour" "--kube-api-qps" "kubeApiQps" "--kube-api-burst" "kubeApiBurst" }}
{{- $value := index $settings $key }}
{{- if not (kindIs "invalid" $value) }}
- {{ printf "%s=%v" $flag $value | quote }}
{{- end }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}
