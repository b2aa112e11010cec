{{/*
A Prefect Server component: Deployment (+ Service when it has a port). Parameters (dict):
  root       the chart context ($)
  component  hasura | graphql | apollo | towel | ui
  spec       the component's values (image, replicas, resources, placement, probes, extraEnv)
  args       container args (list)
  env        extra env as YAML text
  port       container port, 0 for none
  probe      HTTP path for readiness/liveness (with a port)
  liveness   a livenessProbe check as YAML text, replacing the HTTP one; optional
  podLabels  extra pod labels as YAML text
  mounts     extra volumeMounts as YAML text; volumes: extra volumes as YAML text
  sidecars   extra containers as YAML text (a list); optional
  service    Service values (type, nodePort, annotations); optional
*/}}
{{- define "simmate.serverDeployment" -}}
{{- $ctx := dict "root" .root "component" .component }}
{{- $name := include "simmate.componentName" $ctx }}
{{- if .port }}
apiVersion: v1
kind: Service
metadata:
  {{- include "simmate.metadata" $ctx | nindent 2 }}
  {{- with (.service | default dict).annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ (.service | default dict).type | default "ClusterIP" | quote }}
  selector:
    {{- include "simmate.selectorLabels" $ctx | nindent 4 }}
  ports:
    - name: http
      port: {{ .port | int }}
      targetPort: http
      {{- with (.service | default dict).nodePort }}
      nodePort: {{ . | int }}
      {{- end }}
---
{{- end }}
apiVersion: apps/v1
kind: Deployment
metadata:
  {{- include "simmate.metadata" $ctx | nindent 2 }}
spec:
  replicas: {{ .spec.replicas | int }}
  selector:
    matchLabels:
      {{- include "simmate.selectorLabels" $ctx | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "simmate.labels" $ctx | nindent 8 }}
        {{- with .podLabels }}
        {{- . | nindent 8 }}
        {{- end }}
    spec:
      {{- include "simmate.podSpec" (dict "root" .root "uid" 1000 "placement" .spec) | nindent 6 }}
      containers:
        {{- $ports := "" }}
        {{- $probes := "" }}
        {{- if .port }}
        {{- $ports = printf "- name: http\n  containerPort: %d" (.port | int) }}
        {{- $check := printf "httpGet:\n  path: %s\n  port: http" (.probe | quote) }}
        {{- $probes = include "simmate.probes" (dict "root" .root "spec" .spec "check" $check "liveness" .liveness) }}
        {{- end }}
        {{- $env := printf "%s\n%s" (.env | default "") (include "simmate.extraEnv" .spec.extraEnv) | trim }}
        {{- include "simmate.container" (dict "root" .root "name" .component
          "image" (include "simmate.prefectImage" (dict "root" .root "image" .spec.image))
          "args" .args "env" $env "ports" $ports "probes" $probes "resources" .spec.resources
          "mounts" .mounts) | nindent 8 }}
        {{- with .sidecars }}
        {{- . | nindent 8 }}
        {{- end }}
      volumes:
        {{- include "simmate.tmpVolume" . | nindent 8 }}
        {{- with .volumes }}
        {{- . | nindent 8 }}
        {{- end }}
{{- end }}
