{{/* ---------------------------------------------------------------- pods and containers
One definition of the locked-down pod and container (Pod Security Standard "restricted"), of
probes and of the Jobs the chart runs, so every template gets the same hardening. Values cascade
like Airflow's chart: a component's own `securityContext` / `probes` keys, then the chart-wide
ones, then the chart's defaults (the image's user). */}}

{{/* Pod-level settings of every pod: (dict "root" $ "uid" <the image's user> "placement" <the
     component's values: nodeSelector, tolerations, securityContext; or dict>) */}}
{{- define "simmate.podSpec" -}}
{{- $placement := .placement | default dict }}
{{- $user := dict "runAsUser" .uid "runAsGroup" .uid "fsGroup" .uid }}
{{- /* mergeOverwrite skips null and empty values: those keys inherit */}}
{{- $user = mergeOverwrite $user (deepCopy (.root.Values.securityContext | default dict)) (deepCopy ($placement.securityContext | default dict)) -}}
automountServiceAccountToken: false
securityContext:
  runAsNonRoot: true
  runAsUser: {{ $user.runAsUser | int }}
  runAsGroup: {{ $user.runAsGroup | int }}
  fsGroup: {{ $user.fsGroup | int }}
  {{- with $user.fsGroupChangePolicy }}
  fsGroupChangePolicy: {{ . | quote }}
  {{- end }}
  {{- with $user.supplementalGroups }}
  supplementalGroups:
    {{- range . }}
    - {{ . | int }}
    {{- end }}
  {{- end }}
  seccompProfile:
    type: RuntimeDefault
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . | quote }}
  {{- end }}
{{- end }}
{{- with $placement.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $placement.tolerations }}
tolerations:
  {{- range . }}
  - {{- with .key }} key: {{ . | quote }}{{ end }}
    operator: {{ .operator | quote }}
    {{- with .value }}
    value: {{ . | quote }}
    {{- end }}
    {{- with .effect }}
    effect: {{ . | quote }}
    {{- end }}
  {{- end }}
{{- end }}
{{- end }}

{{/* Container-level settings of every container; not values: nothing may weaken them. */}}
{{- define "simmate.containerSecurityContext" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  runAsNonRoot: true
  privileged: false
  capabilities:
    drop: ["ALL"]
{{- end }}

{{/* resources block from a {requests, limits} value */}}
{{- define "simmate.resources" -}}
resources:
  requests:
    cpu: {{ .requests.cpu | quote }}
    memory: {{ .requests.memory | quote }}
  limits:
    cpu: {{ .limits.cpu | quote }}
    memory: {{ .limits.memory | quote }}
{{- end }}

{{/* readinessProbe and livenessProbe of one check (YAML text: an httpGet or exec block;
     "liveness", optional, replaces it for the liveness probe). Each timing key: the component's
     `probes` value when set, else the chart-wide `probes`:
     (dict "root" $ "spec" <the component's values> "check" text ["liveness" text]) */}}
{{- define "simmate.probes" -}}
{{- $own := (.spec | default dict).probes | default dict }}
{{- range $probe := list "readiness" "liveness" }}
{{- $global := index $.root.Values.probes $probe | default dict }}
{{- $local := index $own $probe | default dict }}
{{ $probe }}Probe:
  {{- if and (eq $probe "liveness") $.liveness }}
  {{- $.liveness | nindent 2 }}
  {{- else }}
  {{- $.check | nindent 2 }}
  {{- end }}
  {{- range $key := list "initialDelaySeconds" "periodSeconds" "timeoutSeconds" "failureThreshold" }}
  {{- $value := index $global $key }}
  {{- if not (kindIs "invalid" (index $local $key)) }}{{ $value = index $local $key }}{{ end }}
  {{- if not (kindIs "invalid" $value) }}
  {{ $key }}: {{ $value | int }}
  {{- end }}
  {{- end }}
{{- end }}
{{- end }}

{{/* One container: (dict "root" $ "name" n "image" <YAML text> ["command" list] ["args" list]
     ["env" <YAML text>] ["ports" <YAML text>] ["probes" <YAML text>] "resources" <values>
     ["mounts" <YAML text>] ["kubeApi" true]) -> a list item with HOME=/tmp, the locked-down
     securityContext and the /tmp scratch mount (plus the API token with kubeApi). */}}
{{- define "simmate.container" -}}
- name: {{ .name | quote }}
  {{- .image | nindent 2 }}
  {{- with .command }}
  command:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .args }}
  args:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  env:
    {{- with .env }}
    {{- . | nindent 4 }}
    {{- end }}
    - name: HOME
      value: /tmp
  {{- with .ports }}
  ports:
    {{- . | nindent 4 }}
  {{- end }}
  {{- with .probes }}
  {{- . | nindent 2 }}
  {{- end }}
  {{- include "simmate.resources" .resources | nindent 2 }}
  {{- include "simmate.containerSecurityContext" . | nindent 2 }}
  volumeMounts:
    {{- with .mounts }}
    {{- . | nindent 4 }}
    {{- end }}
    {{- if .kubeApi }}
    {{- include "simmate.kubeApiMount" . | nindent 4 }}
    {{- end }}
    {{- include "simmate.tmpMount" . | nindent 4 }}
{{- end }}

{{/* The spec of a Job the chart runs itself (hooks, the retention CronJob): one try per pod,
     a deadline, cleaned up after a day. (dict "root" $ "component" c "containers" <YAML text>
     ["backoffLimit" n] ["deadline" seconds] ["restartPolicy" "OnFailure"] ["uid" n]
     ["placement" values] ["serviceAccount" true] ["podLabels" text] ["podAnnotations" text]
     ["volumes" text] ["kubeApi" true]) */}}
{{- define "simmate.jobSpec" -}}
backoffLimit: {{ ternary .backoffLimit 1 (hasKey . "backoffLimit") | int }}
{{- with .deadline }}
activeDeadlineSeconds: {{ . | int }}
{{- end }}
ttlSecondsAfterFinished: 86400
template:
  metadata:
    labels:
      {{- include "simmate.labels" . | nindent 6 }}
      {{- with .podLabels }}
      {{- . | nindent 6 }}
      {{- end }}
    {{- with .podAnnotations }}
    annotations:
      {{- . | nindent 6 }}
    {{- end }}
  spec:
    restartPolicy: {{ .restartPolicy | default "Never" | quote }}
    {{- include "simmate.podSpec" (dict "root" .root "uid" (.uid | default 1000) "placement" .placement) | nindent 4 }}
    {{- if .serviceAccount }}
    serviceAccountName: {{ include "simmate.componentName" . | quote }}
    {{- end }}
    containers:
      {{- .containers | nindent 6 }}
    volumes:
      {{- with .volumes }}
      {{- . | nindent 6 }}
      {{- end }}
      {{- if .kubeApi }}
      {{- include "simmate.kubeApiVolume" . | nindent 6 }}
      {{- end }}
      {{- include "simmate.tmpVolume" . | nindent 6 }}
{{- end }}

{{/* A Job the chart runs as a Helm hook: jobSpec's parameters plus "hook" and "weight". */}}
{{- define "simmate.hookJob" -}}
apiVersion: batch/v1
kind: Job
metadata:
  {{- include "simmate.metadata" . | nindent 2 }}
spec:
  {{- include "simmate.jobSpec" . | nindent 2 }}
{{- end }}

{{/* ServiceAccount, Role (ClusterRole with "cluster") and binding of a pod that calls the
     Kubernetes API with exactly these rules: (dict "root" $ "component" c "rules" <YAML text>
     ["cluster" true] ["hook" h "weight" w]). Its token comes from kubeApiVolume. */}}
{{- define "simmate.kubeApiAccess" -}}
{{- $name := include "simmate.componentName" . }}
{{- $role := ternary "ClusterRole" "Role" (.cluster | default false) }}
apiVersion: v1
kind: ServiceAccount
metadata:
  {{- include "simmate.metadata" . | nindent 2 }}
automountServiceAccountToken: false
---
apiVersion: rbac.authorization.k8s.io/v1
kind: {{ $role }}
metadata:
  {{- include "simmate.metadata" . | nindent 2 }}
rules:
  {{- .rules | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: {{ $role }}Binding
metadata:
  {{- include "simmate.metadata" . | nindent 2 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: {{ $role }}
  name: {{ $name | quote }}
subjects:
  - kind: ServiceAccount
    name: {{ $name | quote }}
    namespace: {{ .root.Release.Namespace | quote }}
{{- end }}

{{/* The writable scratch space every container gets: /tmp (also HOME). */}}
{{- define "simmate.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}

{{- define "simmate.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 1Gi
{{- end }}


{{/* The stdlib-only Kubernetes client the hook Jobs run with `python -c` (files/kube_hook.py). */}}
{{- define "simmate.kubeHookScript" -}}
{{- .Files.Get "files/kube_hook.py" }}
{{- end }}

{{/* A short-lived, projected token for the hook Jobs that call the Kubernetes API (automounting
     stays off everywhere): (dict "root" $) -> a volume named kube-api-access */}}
{{- define "simmate.kubeApiVolume" -}}
- name: kube-api-access
  projected:
    sources:
      - serviceAccountToken:
          path: token
          expirationSeconds: 3600
      - configMap:
          name: kube-root-ca.crt
          items:
            - key: ca.crt
              path: ca.crt
      - downwardAPI:
          items:
            - path: namespace
              fieldRef:
                fieldPath: metadata.namespace
{{- end }}

{{- define "simmate.kubeApiMount" -}}
- name: kube-api-access
  mountPath: /var/run/secrets/kubernetes.io/serviceaccount
  readOnly: true
{{- end }}

