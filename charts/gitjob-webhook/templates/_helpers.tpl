{{/*
Names. They are the objects' names in manifests/ and in the code (the admission server writes a
Role gitjob-webhook-receiver-secrets, a Lease gitjob-webhook-reconcile; the global Secret is
gitjob-webhook), so they are fixed: one release per cluster, as there is one Fleet.
*/}}
{{- define "gitjob-webhook.receiver" -}}gitjob-webhook-receiver{{- end }}
{{- define "gitjob-webhook.admission" -}}gitjob-webhook-admission{{- end }}
{{- define "gitjob-webhook.tlsSecret" -}}gitjob-webhook-admission-tls{{- end }}

{{/* The controller namespace: the release namespace, which must be controllerNamespace. */}}
{{- define "gitjob-webhook.namespace" -}}
{{- if ne .Release.Namespace .Values.controllerNamespace -}}
{{- fail (printf "gitjob-webhook must be installed into the controller namespace %q (helm install -n %s), not %q; if Fleet runs elsewhere, set controllerNamespace to that namespace" .Values.controllerNamespace .Values.controllerNamespace .Release.Namespace) -}}
{{- end -}}
{{- .Release.Namespace -}}
{{- end }}

{{/* system:serviceaccount:<namespace>:<name> of a component's ServiceAccount. */}}
{{- define "gitjob-webhook.serviceAccountUser" -}}
system:serviceaccount:{{ include "gitjob-webhook.namespace" .root }}:{{ .name }}
{{- end }}

{{/*
metadata of an object: name, namespace (unless cluster-scoped), labels and annotations.
Arguments: root, name, component (optional), clusterScoped (optional), annotations (optional).
Selectors never carry these labels: they stay those of manifests/, so that an install made with
kustomize can be taken over (a Deployment's selector cannot change).
*/}}
{{- define "gitjob-webhook.metadata" -}}
{{- $root := .root -}}
name: {{ .name }}
{{- if not .clusterScoped }}
namespace: {{ include "gitjob-webhook.namespace" $root }}
{{- end }}
{{- $labels := dict "app.kubernetes.io/name" "gitjob-webhook" "app.kubernetes.io/part-of" "fleet" "app.kubernetes.io/instance" $root.Release.Name "app.kubernetes.io/managed-by" $root.Release.Service "app.kubernetes.io/version" $root.Chart.AppVersion "helm.sh/chart" (printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_") }}
{{- with .component }}
{{- $_ := set $labels "app.kubernetes.io/component" . }}
{{- end }}
labels:
  {{- toYaml (merge $labels $root.Values.commonLabels) | nindent 2 }}
{{- $annotations := merge (dict) (.annotations | default dict) $root.Values.commonAnnotations }}
{{- with $annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The labels that select a component's pods (as in manifests/: never anything else). */}}
{{- define "gitjob-webhook.selector" -}}
app.kubernetes.io/name: gitjob-webhook
app.kubernetes.io/component: {{ . }}
{{- end }}

{{/* GITJOB_WEBHOOK_<NAME> variables from a dict of option name to value. */}}
{{- define "gitjob-webhook.env" -}}
{{- range $option, $value := . }}
- name: GITJOB_WEBHOOK_{{ $option | upper }}
  value: {{ toString $value | quote }}
{{- end }}
{{- end }}

{{/* Scheduling and image settings both Deployments share. */}}
{{- define "gitjob-webhook.podScheduling" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "gitjob-webhook.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* Spread a component's pods over nodes and zones; still schedule on a single node. */}}
{{- define "gitjob-webhook.spread" -}}
{{- $component := . -}}
{{- range list "kubernetes.io/hostname" "topology.kubernetes.io/zone" }}
- maxSkew: 1
  topologyKey: {{ . }}
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "gitjob-webhook.selector" $component | nindent 6 }}
{{- end }}
{{- end }}

{{/* The hardened container securityContext (UID 65532, read-only root, no capabilities). */}}
{{- define "gitjob-webhook.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
The admission server's TLS material, computed once per render (the Secrets and the webhook
configurations' caBundle must agree) and returned as JSON: caBundle (base64 PEM, or empty) and,
in `generate` mode, caCert/caKey/cert/key (PEM) and expires (RFC 3339).

generate: the CA in Secret gitjob-webhook-ca is reused when it exists (so caBundle survives
upgrades); otherwise genCA makes one. The serving pair is reused while it was issued by that CA for
the same names and is not within renewDaysBefore of expiry; otherwise it is issued again.
*/}}
{{- define "gitjob-webhook.tls" -}}
{{- if not (hasKey $ "gitjobWebhookTLS") -}}
{{- $namespace := include "gitjob-webhook.namespace" $ -}}
{{- $service := include "gitjob-webhook.admission" $ -}}
{{- $tls := dict "caBundle" "" -}}
{{- $mode := .Values.certificates.mode -}}
{{- $existingTLS := lookup "v1" "Secret" $namespace (include "gitjob-webhook.tlsSecret" $) | default dict -}}
{{- if eq $mode "generate" -}}
  {{- $settings := .Values.certificates.generate -}}
  {{- $names := list $service (printf "%s.%s" $service $namespace) (printf "%s.%s.svc" $service $namespace) (printf "%s.%s.svc.cluster.local" $service $namespace) -}}
  {{- $kept := lookup "v1" "Secret" $namespace "gitjob-webhook-ca" | default dict -}}
  {{- $keptData := $kept.data | default dict -}}
  {{- $ca := dict -}}
  {{- if and (index $keptData "tls.crt") (index $keptData "tls.key") -}}
    {{- $ca = buildCustomCert (index $keptData "tls.crt") (index $keptData "tls.key") -}}
  {{- else -}}
    {{- $ca = genCA "gitjob-webhook-ca" (int $settings.caDays) -}}
  {{- end -}}
  {{- $_ := set $tls "caCert" $ca.Cert -}}
  {{- $_ := set $tls "caKey" $ca.Key -}}
  {{- $data := $existingTLS.data | default dict -}}
  {{- $annotations := ($existingTLS.metadata | default dict).annotations | default dict -}}
  {{- $expires := index $annotations "gitjob-webhook.fleet.cattle.io/expires" | default "" -}}
  {{- $renewAt := now | dateModify (printf "+%dh" (mul (int $settings.renewDaysBefore) 24)) -}}
  {{- $reuse := and (index $data "tls.crt") (index $data "tls.key") $expires
        (eq (index $data "ca.crt" | default "") ($ca.Cert | b64enc))
        (eq (index $annotations "gitjob-webhook.fleet.cattle.io/dns-names" | default "") (join "," $names)) -}}
  {{- if and $reuse (gt (toDate "2006-01-02T15:04:05Z07:00" $expires).Unix $renewAt.Unix) -}}
    {{- $_ := set $tls "cert" (index $data "tls.crt" | b64dec) -}}
    {{- $_ := set $tls "key" (index $data "tls.key" | b64dec) -}}
    {{- $_ := set $tls "expires" $expires -}}
  {{- else -}}
    {{- $cert := genSignedCert $service nil $names (int $settings.certDays) $ca -}}
    {{- $_ := set $tls "cert" $cert.Cert -}}
    {{- $_ := set $tls "key" $cert.Key -}}
    {{- $_ := set $tls "expires" (now | dateModify (printf "+%dh" (mul (int $settings.certDays) 24)) | date "2006-01-02T15:04:05Z07:00") -}}
  {{- end -}}
  {{- $_ := set $tls "dnsNames" (join "," $names) -}}
  {{- $_ := set $tls "caBundle" ($ca.Cert | b64enc) -}}
{{- else if eq $mode "existingSecret" -}}
  {{- $given := .Values.certificates.existingSecret -}}
  {{- $secret := lookup "v1" "Secret" $namespace $given.name | default dict -}}
  {{- $_ := set $tls "caBundle" ($given.caBundle | b64enc) -}}
  {{- if not $given.caBundle -}}
    {{- $_ := set $tls "caBundle" (index ($secret.data | default dict) "ca.crt" | default "") -}}
  {{- end -}}
{{- else -}}
  {{- /* certManager: cainjector fills caBundle; until it has, the CA of the issued Secret (upgrades). */ -}}
  {{- $_ := set $tls "caBundle" (index ($existingTLS.data | default dict) "ca.crt" | default "") -}}
{{- end -}}
{{- $_ := set $ "gitjobWebhookTLS" $tls -}}
{{- end -}}
{{- toJson (index $ "gitjobWebhookTLS") -}}
{{- end }}

{{/* A NetworkPolicy ingress rule: TCP `port`, from `from` (NetworkPolicyPeers; empty: anyone). */}}
{{- define "gitjob-webhook.ingressRule" -}}
- ports:
    - port: {{ .port }}
      protocol: TCP
  {{- with .from }}
  from:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* NetworkPolicy egress: the API server (443, or 6443 after the Service's DNAT) and DNS only. */}}
{{- define "gitjob-webhook.egressRules" -}}
- ports:
    - port: 443
      protocol: TCP
    - port: 6443
      protocol: TCP
  {{- with .Values.networkPolicy.apiServer }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
  {{- with .Values.networkPolicy.dns }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* config.webhookMode as the service reads it: unquoted on/off in a YAML values file are booleans. */}}
{{- define "gitjob-webhook.webhookMode" -}}
{{- $mode := .Values.config.webhookMode -}}
{{- if kindIs "bool" $mode }}{{ ternary "on" "off" $mode }}{{ else }}{{ $mode }}{{ end -}}
{{- end }}

{{/* A component's PodDisruptionBudget minAvailable, refused when no pod could ever be evicted. */}}
{{- define "gitjob-webhook.minAvailable" -}}
{{- $values := index .root.Values .component -}}
{{- $minimum := $values.podDisruptionBudget.minAvailable -}}
{{- if and (regexMatch "^[0-9]+$" (toString $minimum)) (ge (int $minimum) (int $values.replicas)) -}}
{{- fail (printf "%s.podDisruptionBudget.minAvailable (%v) must be below %s.replicas (%v): otherwise a node drain can never evict one of its pods" .component $minimum .component $values.replicas) -}}
{{- end -}}
{{- $minimum -}}
{{- end }}
