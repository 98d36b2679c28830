{{- define "glimpse.labels" -}}
app.kubernetes.io/name: glimpse
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "glimpse.operator.selector" -}}
app.kubernetes.io/name: glimpse
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "glimpse.proxy.selector" -}}
app.kubernetes.io/name: glimpse
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: proxy
{{- end -}}

{{- define "glimpse.operator.name" -}}{{ .Release.Name }}-operator{{- end -}}
{{- define "glimpse.proxy.name" -}}{{ .Release.Name }}-proxy{{- end -}}

{{- /* An image reference: [global.imageRegistry/]repository, then @digest when one is given, else :tag (the chart's
appVersion by default). Arguments: the image's values and the root context. */ -}}
{{- define "glimpse.image" -}}
{{- $image := index . 0 -}}{{- $root := index . 1 -}}
{{- $registry := trimSuffix "/" ((($root.Values.global | default dict).imageRegistry) | default "") -}}
{{- $repository := ternary (printf "%s/%s" $registry $image.repository) $image.repository (ne $registry "") -}}
{{- if $image.digest -}}
{{ $repository }}@{{ $image.digest }}
{{- else -}}
{{ $repository }}:{{ $image.tag | default $root.Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- /*
No user, group or fsGroup of our own: the images run as UID 10001 in group 0 on plain Kubernetes, and as the UID
OpenShift's restricted-v2 draws from the namespace's range (group 0 still owns what the proxy writes); the volumes
written to are emptyDirs, writable whatever the UID.
*/ -}}
{{- define "glimpse.podSecurityContext" -}}
runAsNonRoot: true
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- /* dev.writableRootFilesystem: only the Tiltfile sets it (live update copies source into the image) */ -}}
{{- define "glimpse.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: {{ not .Values.dev.writableRootFilesystem }}
capabilities:
  drop: [ALL]
{{- end -}}

{{- /*
The operator's rules on namespaced resources: in a Role in each watched namespace (the release namespace unless
operator.watchNamespaces lists others), in a ClusterRole only with operator.watchAllNamespaces. The argument is
kopf's peering resource: clusterkopfpeerings or kopfpeerings.
Least privilege: exactly the kinds and verbs the operator uses (tests check this against its resource table).
*/ -}}
{{- define "glimpse.operator.rules" -}}
# kopf: watch the custom resource, add its finalizer, write its status
- apiGroups: [glimpse.dev]
  resources: [voiceagents]
  verbs: [get, list, watch, patch]
- apiGroups: [glimpse.dev]
  resources: [voiceagents/status]
  verbs: [get, patch]
# owner references with blockOwnerDeletion need it where OwnerReferencesPermissionEnforcement is on
- apiGroups: [glimpse.dev]
  resources: [voiceagents/finalizers]
  verbs: [update]
# kopf's peering: one replica works, the others stand by (kopf.dev; zalando.org where kopf's old CRDs remain)
- apiGroups: [kopf.dev, zalando.org]
  resources: [{{ . }}]
  verbs: [get, list, watch, patch]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
# the proxy's objects, by server-side apply (create + patch) and reads; owner references delete them; Deployments
# watched (only the proxies', by label) for READY.
# Secrets, verb by verb (README: "What the operator may do, and why"; RBAC cannot narrow them by name prefix or
# label, nor a list or watch to names not known in advance):
#   get     the key Secrets a VoiceAgent names (spec.llm, its fallbacks, spec.elevenlabs), and its own glimpse-<name>
#           (the generated keys are kept across reconciles)
#   list, watch  the key Secrets are user-named and may be created after the VoiceAgent: kopf watches the Secrets of
#           the namespace and the VoiceAgents-by-Secret index picks the ones named, so a rotated key rolls the proxy
#           and a late Secret is picked up at once. This reads every Secret of each namespace served.
#   create  glimpse-<name>, the proxy's generated keys, by server-side apply (only that Secret is ever written)
#   patch   glimpse-<name> by server-side apply; the finalizer voiceagent.glimpse.dev/<name> on the ElevenLabs key
#           Secret while a VoiceAgent uses it (only metadata.finalizers of a Secret it did not make)
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [configmaps, services]
  verbs: [get, create, patch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch]
# an Ingress is deleted when spec.ingress is removed, an HTTPRoute when spec.httpRoute is (each would keep publishing
# the proxy)
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [get, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, create, patch]
# an HPA is deleted when autoscaling is turned off (it would keep setting the Deployment's replicas)
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, create, patch, delete]
# the Gateway API's, where its CRDs are installed (a VoiceAgent's spec.httpRoute)
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, create, patch, delete]
# the proxies' NetworkPolicies; one is deleted when its VoiceAgent turns spec.networkPolicy off
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, create, patch, delete]
{{- end -}}

{{- /* The TCP port a URL connects to: its own, else its scheme's (http 80, https 443, redis and rediss 6379); empty
for neither. As glimpse_operator.network_policy.url_port. */ -}}
{{- define "glimpse.urlPort" -}}
{{- $url := urlParse . -}}
{{- regexFind "[0-9]+$" (regexFind ":[0-9]+$" $url.host) | default (get (dict "http" "80" "https" "443" "redis" "6379" "rediss" "6379") $url.scheme) -}}
{{- end -}}

{{- /* The TCP ports a proxy connects to, comma-separated in numeric order: 443 always, and each URL's (empty URLs
skipped). As glimpse_operator.network_policy.egress_ports. */ -}}
{{- define "glimpse.tcpPorts" -}}
{{- $padded := list "00443" -}}
{{- range . -}}
{{- if . -}}
{{- with include "glimpse.urlPort" . -}}
{{- $padded = append $padded (printf "%05d" (atoi .)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $ports := list -}}
{{- range $padded | uniq | sortAlpha -}}
{{- $ports = append $ports (atoi . | toString) -}}
{{- end -}}
{{- join "," $ports -}}
{{- end -}}
