{{/* Worker pod spec for the DaskCluster and every DaskWorkerGroup.
     (dict "root" $ "worker" <worker values> "group" "default") */}}
{{- define "simmate.daskWorker" -}}
{{- $root := .root }}
replicas: {{ .worker.replicas }}
metadata:
  labels:
    {{- include "simmate.labels" (dict "root" $root "component" "dask-worker") | nindent 4 }}
    {{- include "simmate.postgresqlClientLabel" $root | nindent 4 }}
spec:
  {{- include "simmate.podSpec" (dict "root" $root "uid" 1000 "placement" .worker) | nindent 2 }}
  containers:
    - name: worker
      {{- include "simmate.projectImage" $root | nindent 6 }}
      args:
        - dask
        - worker
        - --preload
        - simmate_k8s.preload
        - --name
        - $(DASK_WORKER_NAME)
        - --nthreads
        - {{ .worker.nthreads | quote }}
        - --memory-limit
        - {{ .worker.memoryLimit | quote }}
        - --dashboard-address
        - "8788"
        - --local-directory
        - /tmp
      env:
        {{- include "simmate.resultsEnv" $root | nindent 8 }}
        - name: SIMMATE_WORKER_GROUP
          value: {{ .group | quote }}
        - name: HOME
          value: /tmp
      ports:
        - name: http-dashboard
          containerPort: 8788
      readinessProbe:
        httpGet:
          path: /health
          port: http-dashboard
        periodSeconds: 10
        timeoutSeconds: 5
      livenessProbe:
        httpGet:
          path: /health
          port: http-dashboard
        initialDelaySeconds: 30
        periodSeconds: 20
        timeoutSeconds: 5
        failureThreshold: 6
      {{- include "simmate.resources" .worker.resources | nindent 6 }}
      {{- include "simmate.containerSecurityContext" . | nindent 6 }}
      volumeMounts:
        {{- include "simmate.tmpMount" . | nindent 8 }}
  volumes:
    {{- include "simmate.tmpVolume" . | nindent 4 }}
{{- end }}
