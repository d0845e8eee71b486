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
- run
- --leader-elect
{{- if gt (int .Values.shards) 1 }}
- --shards={{ .Values.shards }}
{{- end }}
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
{{- $trustNamespace := $settings.trustNamespace | default .Release.Namespace }}
{{- if ne $trustNamespace $operatorNamespace }}
- --trust-namespace={{ $trustNamespace }}
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

{{/*
The admission policies of a file in files/ (a copy of crds/, made by hack/sync-chart.py), with the
chart's labels and kept by `helm uninstall`: they guard objects that outlive the operator, as the CRDs do.
*/}}
{{- define "certsmith.keptPolicies" -}}
{{- $root := index . 0 }}
{{- range $document := regexSplit "(?m)^---$" ($root.Files.Get (index . 1)) -1 }}
{{- $object := fromYaml $document }}
{{- if $object }}
{{- $labels := merge (include "certsmith.labels" $root | fromYaml) ($object.metadata.labels | default dict) }}
{{- $_ := set $object.metadata "labels" $labels }}
{{- $annotations := merge (dict "helm.sh/resource-policy" "keep") ($object.metadata.annotations | default dict) }}
{{- $_ := set $object.metadata "annotations" $annotations }}
---
{{ toYaml $object }}
{{- end }}
{{- end }}
{{- end }}
