{{/*
A Prefect Server component: Deployment (+ Service when it has a port). Parameters (dict):
  root       the chart context ($)
  component  hasura | graphql | apollo | towel | ui
  spec       the component's values (image, replicas, runAsUser, resources, placement, extraEnv)
  args       container args (list)
  env        extra env as YAML text
  port       container port, 0 for none
  probe      HTTP path for readiness/liveness (with a port)
  liveness   a livenessProbe body as YAML text, replacing the HTTP one; optional
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
      {{- include "simmate.podSpec" (dict "root" .root "uid" .spec.runAsUser "placement" .spec) | nindent 6 }}
      containers:
        - name: {{ .component | quote }}
          {{- include "simmate.prefectImage" (dict "root" .root "image" .spec.image) | nindent 10 }}
          args:
            {{- toYaml .args | nindent 12 }}
          env:
            {{- with .env }}
            {{- . | nindent 12 }}
            {{- end }}
            - name: HOME
              value: /tmp
            {{- include "simmate.extraEnv" .spec.extraEnv | nindent 12 }}
          {{- if .port }}
          ports:
            - name: http
              containerPort: {{ .port | int }}
          readinessProbe:
            httpGet:
              path: {{ .probe | quote }}
              port: http
            periodSeconds: 10
            timeoutSeconds: 5
          livenessProbe:
            {{- if .liveness }}
            {{- .liveness | nindent 12 }}
            {{- else }}
            httpGet:
              path: {{ .probe | quote }}
              port: http
            {{- end }}
            initialDelaySeconds: 30
            periodSeconds: 20
            timeoutSeconds: 5
            failureThreshold: 6
          {{- end }}
          {{- include "simmate.resources" .spec.resources | nindent 10 }}
          {{- include "simmate.containerSecurityContext" . | nindent 10 }}
          volumeMounts:
            {{- include "simmate.tmpMount" . | nindent 12 }}
            {{- with .mounts }}
            {{- . | nindent 12 }}
            {{- end }}
        {{- with .sidecars }}
        {{- . | nindent 8 }}
        {{- end }}
      volumes:
        {{- include "simmate.tmpVolume" . | nindent 8 }}
        {{- with .volumes }}
        {{- . | nindent 8 }}
        {{- end }}
{{- end }}
