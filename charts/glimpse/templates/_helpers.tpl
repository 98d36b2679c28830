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
written to are emptyDirs, writable whatever the UID. A component's podSecurityContext is merged over it key by key
(a key given replaces the default's value), as the operator merges a VoiceAgent's spec.pod.securityContext.
Argument: the component's values (operator or proxy).
*/ -}}
{{- define "glimpse.podSecurityContext" -}}
{{- $context := dict "runAsNonRoot" true "seccompProfile" (dict "type" "RuntimeDefault") }}
{{- range $key, $value := .podSecurityContext }}
{{- $_ := set $context $key $value }}
{{- end }}
{{- toYaml $context }}
{{- end -}}

{{- /* The container's, merged over the same way with containerSecurityContext. dev.writableRootFilesystem: only the
Tiltfile sets it (live update copies source into the image). Arguments: the component's values, the root context. */ -}}
{{- define "glimpse.containerSecurityContext" -}}
{{- $values := index . 0 }}{{- $root := index . 1 }}
{{- $context := dict "allowPrivilegeEscalation" false "readOnlyRootFilesystem" (not $root.Values.dev.writableRootFilesystem)
  "capabilities" (dict "drop" (list "ALL")) }}
{{- range $key, $value := $values.containerSecurityContext }}
{{- $_ := set $context $key $value }}
{{- end }}
{{- toYaml $context }}
{{- end -}}

{{- /*
Fitting a component's pod to the cluster: the knobs operator.* and proxy.* share (scheduling, pod labels and
annotations, a ServiceAccount, extra env, envFrom and volumes). Each helper takes (list <the component's values>
<operator|proxy> <the root context>) unless it says otherwise.
*/ -}}

{{- /* The component's ServiceAccount name: serviceAccount.name, or <release>-<component> when the chart creates it;
empty when it neither creates nor names one (the pods run as the namespace's default). */ -}}
{{- define "glimpse.serviceAccountName" -}}
{{- $values := index . 0 }}{{- $component := index . 1 }}{{- $root := index . 2 }}
{{- if $values.serviceAccount.create }}
{{- $values.serviceAccount.name | default (printf "%s-%s" $root.Release.Name $component) }}
{{- else }}
{{- $values.serviceAccount.name }}
{{- end }}
{{- end -}}

{{- define "glimpse.serviceAccount" -}}
{{- $values := index . 0 }}{{- $component := index . 1 }}{{- $root := index . 2 }}
{{- if $values.serviceAccount.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "glimpse.serviceAccountName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "glimpse.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ $component }}
  {{- with $values.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: {{ $values.serviceAccount.automountServiceAccountToken }}
---
{{- end }}
{{- end -}}

{{- /* podLabels, beside the chart's labels, which it may not change (the selectors and the ServiceMonitor use them) */ -}}
{{- define "glimpse.podLabels" -}}
{{- $values := index . 0 }}{{- $component := index . 1 }}{{- $root := index . 2 }}
{{- $own := include "glimpse.labels" $root | fromYaml }}
{{- range $key, $_ := $values.podLabels }}
{{- if or (hasKey $own $key) (eq $key "app.kubernetes.io/component") (hasPrefix "glimpse.dev/" $key) }}
{{- fail (printf "%s.podLabels: %s is the chart's own label (its selectors use it)" $component $key) }}
{{- end }}
{{- end }}
{{- with $values.podLabels }}{{ toYaml . }}{{ end }}
{{- end -}}

{{- /* podAnnotations, beside the chart's glimpse.dev/ ones (the config and secrets hashes) */ -}}
{{- define "glimpse.podAnnotations" -}}
{{- $values := index . 0 }}{{- $component := index . 1 }}
{{- range $key, $_ := $values.podAnnotations }}
{{- if hasPrefix "glimpse.dev/" $key }}
{{- fail (printf "%s.podAnnotations: %s is the chart's own annotation" $component $key) }}
{{- end }}
{{- end }}
{{- with $values.podAnnotations }}{{ toYaml . }}{{ end }}
{{- end -}}

{{- /* The pod spec's scheduling fields. A topology spread constraint without a labelSelector spreads the component's
own pods, as the operator does for a VoiceAgent's. Arguments: the component's values, its selector labels (YAML). */ -}}
{{- define "glimpse.podPlacement" -}}
{{- $values := index . 0 }}{{- $selector := index . 1 | fromYaml }}
{{- with $values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- range . }}
  {{- $constraint := deepCopy . }}
  {{- if not (hasKey $constraint "labelSelector") }}
  {{- $_ := set $constraint "labelSelector" (dict "matchLabels" $selector) }}
  {{- end }}
  - {{- toYaml $constraint | nindent 4 }}
  {{- end }}
{{- end }}
{{- end -}}

{{- /* A component's extra env, volumes or mounts as given (full Kubernetes objects), each refused where its `key`
(name, mountPath) is one the chart sets itself. Arguments: the list, the key, the chart's own values of that key,
what the list is called (proxy.extraEnv), what to do instead. */ -}}
{{- define "glimpse.extras" -}}
{{- $items := index . 0 }}{{- $key := index . 1 }}{{- $own := index . 2 }}{{- $what := index . 3 }}{{- $instead := index . 4 }}
{{- range $items }}
{{- $value := get . $key | toString }}
{{- if has (regexReplaceAll "/+$" $value "") $own }}
{{- fail (printf "%s: %s is the chart's own %s: %s" $what $value $key $instead) }}
{{- end }}
{{- end }}
{{- with $items }}{{ toYaml . }}{{ end }}
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
# glimpse-<name>, only for a VoiceAgent whose spec.pod.serviceAccount.create asks for it (a cloud identity by name);
# no delete: one the spec no longer asks for is unused, and goes with the VoiceAgent (owner reference)
- apiGroups: [""]
  resources: [serviceaccounts]
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

{{- /* A proxy's OTEL_* configuration from tracing values (proxy.tracing), as JSON: the endpoint, the service name,
the resource attributes (k8s.namespace.name and glimpse.voiceagent, then the values', which win, sorted by key), the
sampler when given; nothing without otlpEndpoint. As glimpse_operator.tracing.tracing_environment renders
operator.proxyDefaults.tracing. Arguments: the tracing values, the namespace, the VoiceAgent's (here the release's)
name. */ -}}
{{- define "glimpse.tracingConfig" -}}
{{- $t := index . 0 | default dict }}{{- $namespace := index . 1 }}{{- $agent := index . 2 }}
{{- $config := dict }}
{{- if $t.otlpEndpoint }}
{{- $attributes := merge (deepCopy ($t.resourceAttributes | default dict)) (dict "k8s.namespace.name" $namespace "glimpse.voiceagent" $agent) }}
{{- $pairs := list }}
{{- range $key := keys $attributes | sortAlpha }}
{{- $pairs = append $pairs (printf "%s=%s" $key (get $attributes $key)) }}
{{- end }}
{{- $config = dict "OTEL_EXPORTER_OTLP_ENDPOINT" $t.otlpEndpoint "OTEL_SERVICE_NAME" ($t.serviceName | default "glimpse") "OTEL_RESOURCE_ATTRIBUTES" (join "," $pairs) }}
{{- with $t.sampler }}{{ $_ := set $config "OTEL_TRACES_SAMPLER" . }}{{ end }}
{{- with $t.samplerArg }}{{ $_ := set $config "OTEL_TRACES_SAMPLER_ARG" (toString .) }}{{ end }}
{{- end }}
{{- toJson $config }}
{{- end -}}
