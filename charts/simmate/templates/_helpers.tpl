{{/* ---------------------------------------------------------------- names */}}

{{- define "simmate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-<chart>, or just <release> when it already contains the chart name. */}}
{{- define "simmate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of a component's objects: (dict "root" $ "component" "hasura") -> <fullname>-hasura */}}
{{- define "simmate.componentName" -}}
{{- printf "%s-%s" (include "simmate.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "simmate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* ---------------------------------------------------------------- labels */}}

{{/* Selector labels: name + instance + component only. Call with (dict "root" $ "component" "x"). */}}
{{- define "simmate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "simmate.name" .root | quote }}
app.kubernetes.io/instance: {{ .root.Release.Name | quote }}
app.kubernetes.io/component: {{ .component | quote }}
{{- end }}

{{/* Every object's labels. Call with (dict "root" $ "component" "x"). */}}
{{- define "simmate.labels" -}}
{{ include "simmate.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .root.Release.Service | quote }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: simmate
helm.sh/chart: {{ include "simmate.chart" .root | quote }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Metadata block of an object: (dict "root" $ "component" "x" ["name" "other-name"]
     ["hook" "post-install,post-upgrade" "weight" 0 ["deletePolicy" "..."]]); with a hook,
     Helm's hook annotations (deleted before the next run and once it succeeded). */}}
{{- define "simmate.metadata" -}}
name: {{ .name | default (include "simmate.componentName" .) | quote }}
namespace: {{ .root.Release.Namespace | quote }}
labels:
  {{- include "simmate.labels" . | nindent 2 }}
{{- if .hook }}
annotations:
  helm.sh/hook: {{ .hook | quote }}
  {{- if hasKey . "weight" }}
  helm.sh/hook-weight: {{ .weight | toString | quote }}
  {{- end }}
  helm.sh/hook-delete-policy: {{ .deletePolicy | default "before-hook-creation,hook-succeeded" | quote }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------- images */}}

{{/* (dict "image" .Values.x.image "tag" "default-tag") -> repository:tag + pull policy lines */}}
{{- define "simmate.image" -}}
image: {{ printf "%s:%s" .image.repository (.image.tag | default .tag) | quote }}
imagePullPolicy: {{ .image.pullPolicy | quote }}
{{- end }}

{{- define "simmate.projectImage" -}}
{{ include "simmate.image" (dict "image" .Values.image "tag" .Chart.AppVersion) }}
{{- end }}

{{/* The project image as one reference, REPOSITORY:TAG (what provenance records) */}}
{{- define "simmate.projectImageRef" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "simmate.prefectImage" -}}
{{ include "simmate.image" (dict "image" .image "tag" .root.Values.prefectServer.version) }}
{{- end }}

{{/* ---------------------------------------------------------------- addresses and secrets */}}

{{- define "simmate.apiUrl" -}}
{{- if .Values.agent.apiUrl }}
{{- .Values.agent.apiUrl }}
{{- else }}
{{- printf "http://%s.%s.svc:4200/graphql" (include "simmate.componentName" (dict "root" . "component" "apollo")) .Release.Namespace }}
{{- end }}
{{- end }}

{{/* The DaskCluster's name: at most 53 characters, the operator's limit (dask_kubernetes.constants
     MAX_CLUSTER_NAME_LEN), so that `<cluster>-scheduler` stays a valid Service name. */}}
{{- define "simmate.daskClusterName" -}}
{{- printf "%s-dask" (include "simmate.fullname" .) | trunc 53 | trimSuffix "-" }}
{{- end }}

{{/* The operator names the scheduler Service `<cluster>-scheduler` (SCHEDULER_NAME_TEMPLATE);
     every address is derived from that rule here, in one place, never in Python. */}}
{{- define "simmate.daskSchedulerName" -}}
{{- printf "%s-scheduler" (include "simmate.daskClusterName" .) }}
{{- end }}

{{/* tls:// with dask.tls (templates/dask/_tls.tpl), else tcp:// */}}
{{- define "simmate.daskAddress" -}}
{{- printf "%s://%s.%s.svc:8786" (ternary "tls" "tcp" (eq (include "simmate.daskTls" .) "true")) (include "simmate.daskSchedulerName" .) .Release.Namespace }}
{{- end }}

{{/* Env of every container talking to Prefect Server v1. */}}
{{- define "simmate.prefectClientEnv" -}}
- name: PREFECT__BACKEND
  value: server
- name: PREFECT__CLOUD__API
  value: {{ include "simmate.apiUrl" . | quote }}
- name: PREFECT__SERVER__ENDPOINT
  value: {{ include "simmate.apiUrl" . | quote }}
- name: HOME
  value: /tmp
{{- end }}

{{/* ---------------------------------------------------------------- databases and their roles */}}

{{/* Database roles of the bundled postgres (files/postgres-roles.sql; docs/chart.md "Databases
     and secrets"): the superuser (postgresql.username, used only at initialisation) and
     postgresql.roles.{prefect,owner,writer,reader}. Each password is in a Secret of its own: the
     role's existingSecret, else one the chart generates, <fullname>-postgresql(-<role>). */}}

{{/* A role's values {name, existingSecret, passwordKey}: (dict "root" $ "role" "writer"|"superuser") */}}
{{- define "simmate.dbRole" -}}
{{- $pg := .root.Values.postgresql }}
{{- if eq .role "superuser" }}
{{- toYaml (dict "name" $pg.username "existingSecret" $pg.existingSecret "passwordKey" $pg.passwordKey) }}
{{- else }}
{{- toYaml (index $pg.roles .role) }}
{{- end }}
{{- end }}

{{/* The component (and so the name) of a role's generated Secret. */}}
{{- define "simmate.dbRoleComponent" -}}
{{- ternary "postgresql" (printf "postgresql-%s" .role) (eq .role "superuser") }}
{{- end }}

{{/* `secretKeyRef` of a role's password: (dict "root" $ "role" "writer") */}}
{{- define "simmate.dbRoleSecretRef" -}}
{{- $r := include "simmate.dbRole" . | fromYaml -}}
secretKeyRef:
  name: {{ $r.existingSecret | default (include "simmate.componentName" (dict "root" .root "component" (include "simmate.dbRoleComponent" .))) | quote }}
  key: {{ $r.passwordKey | quote }}
{{- end }}

{{/* The bundled postgres' Service, as clients address it. */}}
{{- define "simmate.postgresqlHost" -}}
{{- include "simmate.componentName" (dict "root" . "component" "postgresql") }}
{{- end }}

{{/* SIMMATE_DATABASE_URL of a results-database role: (dict "root" $ "role" "writer"|"owner").
     An external results database: the URL from its Secret (results.existingSecret for the
     writer, results.schema.existingSecret for the owner). The bundled postgres: the role's
     password from its Secret, the URL assembled by Kubernetes env expansion, so that a Secret
     never holds a URL the chart would have to keep in step with the password. */}}
{{- define "simmate.resultsUrlEnv" -}}
{{- $v := .root.Values }}
{{- $external := ternary $v.results.existingSecret $v.results.schema.existingSecret (eq .role "writer") }}
{{- if $external -}}
- name: SIMMATE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $external | quote }}
      key: {{ ternary $v.results.key $v.results.schema.key (eq .role "writer") | quote }}
{{- else }}
{{- $r := include "simmate.dbRole" . | fromYaml -}}
- name: SIMMATE_DB_PASSWORD
  valueFrom:
    {{- include "simmate.dbRoleSecretRef" . | nindent 4 }}
- name: SIMMATE_DATABASE_URL
  value: {{ printf "postgresql+psycopg://%s:$(SIMMATE_DB_PASSWORD)@%s:5432/%s" $r.name (include "simmate.postgresqlHost" .root) $v.postgresql.resultsDatabase | quote }}
{{- end }}
{{- end }}

{{/* Env for the results database as its writer (dask workers, flow-run Jobs, tests). */}}
{{- define "simmate.resultsEnv" -}}
{{- include "simmate.resultsUrlEnv" (dict "root" . "role" "writer") }}
- name: SIMMATE_DB_CONNECT_TIMEOUT
  value: {{ .Values.results.connectTimeout | quote }}
{{- /* recorded with every result as provenance */}}
- name: SIMMATE_IMAGE
  value: {{ include "simmate.projectImageRef" . | quote }}
{{- end }}

{{/* "true" when the results-schema hook Job runs: asked for, and an owner it can run as. */}}
{{- define "simmate.resultsSchemaJob" -}}
{{- $s := .Values.results.schema }}
{{- if and $s.enabled (or $s.existingSecret .Values.postgresql.enabled) }}true{{ end }}
{{- end }}

{{- define "simmate.hasuraSecretName" -}}
{{- .Values.prefectServer.hasura.adminSecret.existingSecret | default (include "simmate.componentName" (dict "root" . "component" "hasura")) }}
{{- end }}

{{- define "simmate.hasuraEnv" -}}
- name: PREFECT_SERVER__HASURA__HOST
  value: {{ include "simmate.componentName" (dict "root" . "component" "hasura") | quote }}
- name: PREFECT_SERVER__HASURA__PORT
  value: "3000"
- name: PREFECT_SERVER__HASURA__ADMIN_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "simmate.hasuraSecretName" . | quote }}
      key: {{ .Values.prefectServer.hasura.adminSecret.key | quote }}
{{- end }}

{{/* Prefect's database, as Prefect's role: password from a Secret, URL assembled by Kubernetes
     env expansion. Call with (dict "root" $ "name" "ENV_NAME_OF_THE_URL"). */}}
{{- define "simmate.prefectDbEnv" -}}
{{- $v := .root.Values }}
{{- if $v.postgresql.enabled }}
- name: PREFECT_DB_PASSWORD
  valueFrom:
    {{- include "simmate.dbRoleSecretRef" (dict "root" .root "role" "prefect") | nindent 4 }}
- name: {{ .name | quote }}
  value: {{ printf "postgresql://%s:$(PREFECT_DB_PASSWORD)@%s:5432/%s" $v.postgresql.roles.prefect.name (include "simmate.postgresqlHost" .root) $v.postgresql.database | quote }}
{{- else }}
{{- $e := $v.externalDatabase }}
- name: PREFECT_DB_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $e.existingSecret | quote }}
      key: {{ $e.passwordKey | quote }}
- name: {{ .name | quote }}
  value: {{ printf "postgresql://%s:$(PREFECT_DB_PASSWORD)@%s:%d/%s?sslmode=%s" $e.user $e.host (int $e.port) $e.database $e.sslmode | quote }}
{{- end }}
{{- end }}

{{/* Extra env from a {name: value} map */}}
{{- define "simmate.extraEnv" -}}
{{- range $name, $value := . }}
- name: {{ $name | quote }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------- generated secrets */}}

{{/* The one lookup behind every Secret the chart generates (passwords, the hasura admin secret,
     the Dask TLS certificates), as Bitnami's common.secrets does: the decoded values of `keys`
     in the Secret `name`, as YAML, when it exists and holds every one of them; else {}. That
     keeps them across `helm upgrade`. Under `helm template` (Argo CD, rendered GitOps) there is
     no cluster to look in and every render draws new values: use the existingSecret values there.
     (dict "root" $ "name" "<secret>" "keys" (list "a" "b")) */}}
{{- define "simmate.lookupSecretData" -}}
{{- $found := dict }}
{{- with lookup "v1" "Secret" .root.Release.Namespace .name }}{{ $found = .data | default dict }}{{ end }}
{{- $data := dict }}
{{- range $key := .keys }}
{{- with index $found $key }}{{ $_ := set $data $key (b64dec .) }}{{ end }}
{{- end }}
{{- if eq (len $data) (len .keys) }}{{ toYaml $data }}{{ else }}{}{{ end }}
{{- end }}

{{/* A generated Secret holding one random value under `key`, kept across upgrades (above).
     (dict "root" $ "component" "postgresql-writer" "key" "password" "length" 32) */}}
{{- define "simmate.generatedSecret" -}}
{{- $name := include "simmate.componentName" . }}
{{- $found := include "simmate.lookupSecretData" (dict "root" .root "name" $name "keys" (list .key)) | fromYaml }}
apiVersion: v1
kind: Secret
metadata:
  {{- include "simmate.metadata" (dict "root" .root "component" .component) | nindent 2 }}
type: Opaque
data:
  {{ .key | quote }}: {{ get $found .key | default (randAlphaNum (int .length)) | b64enc | quote }}
{{- end }}

{{/* ---------------------------------------------------------------- Kubernetes quantities */}}

{{/* A CPU quantity as whole threads, at least 1: "500m" -> 1, "2" -> 2, "2500m" -> 2, "1.5" -> 1 */}}
{{- define "simmate.cpuThreads" -}}
{{- $q := toString . }}
{{- $cores := 0.0 }}
{{- if hasSuffix "m" $q }}
{{- $cores = divf (float64 (trimSuffix "m" $q)) 1000.0 }}
{{- else }}
{{- $cores = float64 $q }}
{{- end }}
{{- max 1 (int64 (floor $cores)) }}
{{- end }}

{{/* A memory quantity in bytes: "1Gi" -> 1073741824, "1500Mi" -> 1572864000, "1G" -> 1000000000 */}}
{{- define "simmate.memoryBytes" -}}
{{- $q := toString . }}
{{- $number := $q }}
{{- $factor := 1.0 }}
{{- $binary := dict "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 "Ei" 1152921504606846976.0 }}
{{- $decimal := dict "k" 1000.0 "M" 1000000.0 "G" 1000000000.0 "T" 1000000000000.0 "P" 1000000000000000.0 "E" 1000000000000000000.0 "m" 0.001 }}
{{- $suffix2 := substr (int (max 0 (sub (len $q) 2))) (len $q) $q }}
{{- $suffix1 := substr (int (max 0 (sub (len $q) 1))) (len $q) $q }}
{{- if hasKey $binary $suffix2 }}
{{- $number = trimSuffix $suffix2 $q }}
{{- $factor = get $binary $suffix2 }}
{{- else if hasKey $decimal $suffix1 }}
{{- $number = trimSuffix $suffix1 $q }}
{{- $factor = get $decimal $suffix1 }}
{{- end }}
{{- printf "%d" (int64 (floor (mulf (float64 $number) $factor))) }}
{{- end }}

{{/* ---------------------------------------------------------------- network policy */}}

{{/* A NetworkPolicyPeer from values, leaving out the parts that are null or empty lists, so that
     a missing namespaceSelector (this namespace) never turns into `{}` (every namespace). */}}
{{- define "simmate.networkPolicyPeer" -}}
{{- $peer := dict }}
{{- range $key := list "podSelector" "namespaceSelector" }}
{{- with index $ $key }}
{{- $selector := dict }}
{{- with .matchLabels }}{{- $_ := set $selector "matchLabels" . }}{{- end }}
{{- with .matchExpressions }}{{- $_ := set $selector "matchExpressions" . }}{{- end }}
{{- $_ := set $peer $key $selector }}
{{- end }}
{{- end }}
{{- with .ipBlock }}
{{- $_ := set $peer "ipBlock" (ternary (dict "cidr" .cidr) (dict "cidr" .cidr "except" .except) (empty .except)) }}
{{- end }}
{{- toYaml $peer }}
{{- end }}
