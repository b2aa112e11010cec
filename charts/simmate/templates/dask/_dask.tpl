{{/* ------------------------------------------------------------------------------------------
     The DaskCluster's parts, shared by daskcluster.yaml and the pre-upgrade re-create hook (both
     need the same spec checksum).
     ------------------------------------------------------------------------------------------ */}}

{{/* Worker pod (metadata + spec, no replicas) for the DaskCluster and every DaskWorkerGroup.
     (dict "root" $ "worker" <worker values> "group" "default")
     --nthreads and --memory-limit are always explicit: Dask's own detection reported 2 CPUs and
     512 MiB in a pod limited to 1 CPU and 1 GiB (cgroup v1). "auto" derives them from the
     container's limits, else its requests. */}}
{{- define "simmate.daskWorkerPod" -}}
{{- $daskHealth := "httpGet:\n  path: /health\n  port: http-dashboard" }}
{{- $root := .root }}
{{- $res := .worker.resources }}
{{- $limits := $res.limits | default dict }}
{{- $requests := $res.requests | default dict }}
{{- $nthreads := .worker.nthreads }}
{{- if or (kindIs "invalid" $nthreads) (eq (toString $nthreads) "auto") }}
{{- $nthreads = include "simmate.cpuThreads" ($limits.cpu | default $requests.cpu) }}
{{- end }}
{{- $memory := .worker.memoryLimit }}
{{- if or (kindIs "invalid" $memory) (eq (toString $memory) "auto") }}
{{- $memory = include "simmate.memoryBytes" ($limits.memory | default $requests.memory) }}
{{- end -}}
metadata:
  labels:
    {{- include "simmate.labels" (dict "root" $root "component" "dask-worker") | nindent 4 }}
spec:
  {{- include "simmate.podSpec" (dict "root" $root "uid" 1000 "placement" .worker) | nindent 2 }}
  containers:
    - name: worker
      {{- include "simmate.projectImage" $root | nindent 6 }}
      args:
        - dask
        - worker
        {{- /* The address explicitly, and DASK_SCHEDULER_ADDRESS below, so the operator's own
               tcp:// value (set only when absent) never applies (_tls.tpl). */}}
        - {{ include "simmate.daskAddress" $root | quote }}
        - --preload
        - simmate_k8s.preload
        - --name
        - $(DASK_WORKER_NAME)
        - --nthreads
        - {{ $nthreads | toString | quote }}
        - --memory-limit
        - {{ $memory | toString | quote }}
        - --dashboard-address
        - "8788"
        - --local-directory
        - /tmp
      env:
        {{- include "simmate.resultsEnv" $root | nindent 8 }}
        - name: SIMMATE_WORKER_GROUP
          value: {{ .group | quote }}
        - name: DASK_SCHEDULER_ADDRESS
          value: {{ include "simmate.daskAddress" $root | quote }}
        {{- /* worker: its listener and its connections; client: get_client() in a task */}}
        {{- include "simmate.daskTlsEnv" (dict "root" $root "roles" (list "worker" "client")) | nindent 8 }}
        - name: HOME
          value: /tmp
      ports:
        - name: http-dashboard
          containerPort: 8788
      {{- include "simmate.probes" (dict "root" $root "spec" .worker "check" $daskHealth) | nindent 6 }}
      {{- include "simmate.resources" .worker.resources | nindent 6 }}
      {{- include "simmate.containerSecurityContext" . | nindent 6 }}
      volumeMounts:
        {{- include "simmate.tmpMount" . | nindent 8 }}
        {{- include "simmate.daskTlsMount" $root | nindent 8 }}
  volumes:
    {{- include "simmate.tmpVolume" . | nindent 4 }}
    {{- include "simmate.daskTlsVolume" (dict "root" $root "role" "client") | nindent 4 }}
{{- end }}

{{/* Workers the DaskCluster starts with. With the autoscaler: its minimum, so the two never fight
     (a larger start is scaled away before the workers register, leaving pods behind). */}}
{{- define "simmate.daskReplicas" -}}
{{- $d := .Values.dask }}
{{- if $d.autoscaler.enabled }}
{{- int $d.autoscaler.minimum }}
{{- else if kindIs "invalid" $d.worker.replicas }}
{{- 1 }}
{{- else }}
{{- int $d.worker.replicas }}
{{- end }}
{{- end }}

{{/* The extra worker groups as a YAML list, each merged over dask.worker (keys left out are
     inherited); replicas empty everywhere means 1. */}}
{{- define "simmate.daskGroups" -}}
{{- $d := .Values.dask }}
{{- $groups := list }}
{{- range $d.workerGroups }}
{{- $group := dict }}
{{- range $key, $value := . }}{{- if not (kindIs "invalid" $value) }}{{- $_ := set $group $key $value }}{{- end }}{{- end }}
{{- $group = merge $group (deepCopy $d.worker) }}
{{- if kindIs "invalid" $group.replicas }}{{- $_ := set $group "replicas" 1 }}{{- end }}
{{- $groups = append $groups $group }}
{{- end }}
{{- toYaml $groups }}
{{- end }}

{{/* The scheduler part of the DaskCluster spec. */}}
{{- define "simmate.daskScheduler" -}}
{{- $daskHealth := "httpGet:\n  path: /health\n  port: http-dashboard" }}
{{- $d := .Values.dask }}
{{- $cluster := include "simmate.daskClusterName" . }}
{{- /* Scheduler HTTP routes: distributed's defaults plus the API the operator's autoscaler uses
       (/api/v1/adaptive_target, /api/v1/retire_workers) to retire workers safely. */}}
{{- $routes := list }}
{{- range list "scheduler.prometheus" "scheduler.info" "scheduler.json" "health" "proxy" "statics" "scheduler.api" }}
{{- $routes = append $routes (printf "'distributed.http.%s'" .) }}
{{- end -}}
metadata:
  {{- /* The operator copies these labels onto the scheduler Deployment, pod and Service, so the
         CLI finds the Service by app.kubernetes.io/instance + component=dask-scheduler. */}}
  labels:
    {{- include "simmate.labels" (dict "root" . "component" "dask-scheduler") | nindent 4 }}
spec:
  {{- include "simmate.podSpec" (dict "root" . "uid" 1000 "placement" $d.scheduler) | nindent 2 }}
  containers:
    - name: scheduler
      {{- include "simmate.projectImage" . | nindent 6 }}
      {{- /* --protocol tls: the comm port speaks TLS only; the dashboard and HTTP API on 8787
             stay plain HTTP (the autoscaler's path, see _tls.tpl). */}}
      args: ["dask", "scheduler", "--port", "8786", "--dashboard-address", ":8787"{{ if include "simmate.daskTls" . }}, "--protocol", "tls"{{ end }}]
      env:
        - name: DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES
          value: {{ printf "[%s]" (join ", " $routes) | quote }}
        {{- include "simmate.daskTlsEnv" (dict "root" . "roles" (list "scheduler")) | nindent 8 }}
        - name: HOME
          value: /tmp
      ports:
        - name: tcp-comm
          containerPort: 8786
        - name: http-dashboard
          containerPort: 8787
      {{- include "simmate.probes" (dict "root" . "spec" $d.scheduler "check" $daskHealth) | nindent 6 }}
      {{- include "simmate.resources" $d.scheduler.resources | nindent 6 }}
      {{- include "simmate.containerSecurityContext" . | nindent 6 }}
      volumeMounts:
        {{- include "simmate.tmpMount" . | nindent 8 }}
        {{- include "simmate.daskTlsMount" . | nindent 8 }}
  volumes:
    {{- include "simmate.tmpVolume" . | nindent 4 }}
    {{- include "simmate.daskTlsVolume" (dict "root" . "role" "scheduler") | nindent 4 }}
service:
  type: {{ $d.scheduler.service.type | quote }}
  selector:
    dask.org/cluster-name: {{ $cluster | quote }}
    dask.org/component: scheduler
  {{- /* The operator finds these ports by name (tcp-comm, http-dashboard): keep the names, also
         when tcp-comm speaks TLS. */}}
  ports:
    - name: tcp-comm
      protocol: TCP
      port: 8786
      targetPort: tcp-comm
    - name: http-dashboard
      protocol: TCP
      port: 8787
      targetPort: http-dashboard
      {{- with $d.scheduler.service.nodePort }}
      nodePort: {{ int . }}
      {{- end }}
{{- end }}

{{/* Checksum of every part of the Dask objects the operator does NOT reconcile once created
     (scheduler and worker pod specs, worker groups). Replica counts are left out: the operator
     does follow those. Stored on the DaskCluster; the pre-upgrade hook compares it. */}}
{{- define "simmate.daskSpecChecksum" -}}
{{- $parts := list (include "simmate.daskScheduler" .) (include "simmate.daskWorkerPod" (dict "root" . "worker" .Values.dask.worker "group" "default")) }}
{{- range (include "simmate.daskGroups" . | fromYamlArray) }}
{{- $parts = append $parts (printf "%s\n%s" .name (include "simmate.daskWorkerPod" (dict "root" $ "worker" . "group" .name))) }}
{{- end }}
{{- $parts = append $parts (include "simmate.daskTlsChecksum" .) }}
{{- join "\n---\n" $parts | sha256sum | trunc 16 }}
{{- end }}
