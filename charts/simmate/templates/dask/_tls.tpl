{{/* ------------------------------------------------------------------------------------------
     Dask TLS (dask.tls): certificates, where pods find them, the env that makes Dask use them.

     What Dask checks (distributed/security.py): both sides present a certificate signed by the
     CA (verify_mode CERT_REQUIRED, so a client without one is refused), but hostnames are NOT
     checked (check_hostname=False). The CA is the boundary: it must be this release's own, and
     anyone who can read the client certificate can send code to the workers. The scheduler's
     SANs are for other TLS clients and for cert-manager.

     The operator (dask_kubernetes 2026.3.0, operator/controller/controller.py and networking.py)
     sets DASK_SCHEDULER_ADDRESS=tcp://<cluster>-scheduler.<ns>.svc.cluster.local:8786 on workers
     unless the container already has it: the worker pods set it (and pass the tls:// address as
     an argument). The autoscaler asks the scheduler's HTTP API on the port named
     `http-dashboard` (/api/v1/adaptive_target, /api/v1/retire_workers, /api/v1/check_idle; plain
     HTTP, its address spelled tcp://, which aiohttp accepts as http): that stays plain HTTP on
     8787 and keeps working. Its fallback, the Dask RPC on `tcp-comm`, has no certificates and
     fails against a TLS scheduler (scaling then waits for the HTTP API; retiring falls back to
     LIFO). The HTTP API routes can read state and retire workers; none of them runs code.

     Layout. Generated or existingSecret: ONE Secret with keys ca.crt, scheduler.crt,
     scheduler.key, client.crt, client.key. cert-manager: two Secrets (kubernetes.io/tls: ca.crt,
     tls.crt, tls.key), <fullname>-dask-tls-scheduler and <fullname>-dask-tls-client. Every pod
     sees only its own pair, as /etc/simmate/dask-tls/{ca.crt,tls.crt,tls.key}.
     ------------------------------------------------------------------------------------------ */}}

{{/* "true" when the Dask comms use TLS, else empty. */}}
{{- define "simmate.daskTls" -}}
{{- if and .Values.dask.enabled .Values.dask.tls.enabled }}true{{ end }}
{{- end }}

{{- define "simmate.daskTlsMode" -}}
{{- $t := .Values.dask.tls }}
{{- if $t.existingSecret }}existingSecret{{ else if $t.certManager.issuerRef.name }}certManager{{ else }}generated{{ end }}
{{- end }}

{{/* The Secret a role's pair comes from: (dict "root" $ "role" "scheduler"|"client") */}}
{{- define "simmate.daskTlsSecretName" -}}
{{- $mode := include "simmate.daskTlsMode" .root }}
{{- if eq $mode "existingSecret" }}
{{- .root.Values.dask.tls.existingSecret }}
{{- else if eq $mode "certManager" }}
{{- include "simmate.componentName" (dict "root" .root "component" (printf "dask-tls-%s" .role)) }}
{{- else }}
{{- include "simmate.componentName" (dict "root" .root "component" "dask-tls") }}
{{- end }}
{{- end }}

{{- define "simmate.daskTlsDir" -}}/etc/simmate/dask-tls{{- end }}

{{/* The names the scheduler certificate is valid for (the Service the operator makes). */}}
{{- define "simmate.daskSchedulerDnsNames" -}}
{{- $svc := include "simmate.daskSchedulerName" . }}
{{- $ns := .Release.Namespace }}
{{- toYaml (list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns)) }}
{{- end }}

{{/* The generated PEMs as YAML {ca.crt, scheduler.crt, ...}: the existing Secret's (the chart's one
     lookup, simmate.lookupSecretData; kept across `helm upgrade`) or new ones. Drawn once per render and cached in the values, because
     tls.yaml, the DaskCluster and the pre-upgrade hook all need the same CA (spec checksum). */}}
{{- define "simmate.daskTlsGenerated" -}}
{{- $t := .Values.dask.tls }}
{{- if not (hasKey $t "_generated") }}
{{- $keys := list "ca.crt" "scheduler.crt" "scheduler.key" "client.crt" "client.key" }}
{{- $name := include "simmate.daskTlsSecretName" (dict "root" . "role" "client") }}
{{- $pems := include "simmate.lookupSecretData" (dict "root" . "name" $name "keys" $keys) | fromYaml }}
{{- if not $pems }}
{{- $days := int $t.validityDays }}
{{- $ca := genCA (printf "%s-dask-ca" (include "simmate.fullname" .)) $days }}
{{- $dnsNames := include "simmate.daskSchedulerDnsNames" . | fromYamlArray }}
{{- $scheduler := genSignedCert (first $dnsNames) nil $dnsNames $days $ca }}
{{- $client := genSignedCert (printf "%s-dask-client" (include "simmate.fullname" .)) nil nil $days $ca }}
{{- $pems = dict "ca.crt" $ca.Cert "scheduler.crt" $scheduler.Cert "scheduler.key" $scheduler.Key "client.crt" $client.Cert "client.key" $client.Key }}
{{- end }}
{{- $_ := set $t "_generated" $pems }}
{{- end }}
{{- toYaml (get $t "_generated") }}
{{- end }}

{{/* Part of the DaskCluster spec checksum: a new generated CA (rotation) re-creates the Dask
     pods, whose listeners loaded the old one at start. */}}
{{- define "simmate.daskTlsChecksum" -}}
{{- if and (include "simmate.daskTls" .) (eq (include "simmate.daskTlsMode" .) "generated") }}
{{- get (include "simmate.daskTlsGenerated" . | fromYaml) "ca.crt" | sha256sum }}
{{- end }}
{{- end }}

{{/* The volume with a role's pair: (dict "root" $ "role" "scheduler"|"client"). Mode 0440 with
     the pod's fsGroup: readable by the pod's user, nobody else. */}}
{{- define "simmate.daskTlsVolume" -}}
{{- if include "simmate.daskTls" .root }}
{{- $own := eq (include "simmate.daskTlsMode" .root) "certManager" -}}
- name: dask-tls
  secret:
    secretName: {{ include "simmate.daskTlsSecretName" . | quote }}
    defaultMode: 0440
    items:
      - key: ca.crt
        path: ca.crt
      - key: {{ ternary "tls.crt" (printf "%s.crt" .role) $own | quote }}
        path: tls.crt
      - key: {{ ternary "tls.key" (printf "%s.key" .role) $own | quote }}
        path: tls.key
{{- end }}
{{- end }}

{{- define "simmate.daskTlsMount" -}}
{{- if include "simmate.daskTls" . -}}
- name: dask-tls
  mountPath: {{ include "simmate.daskTlsDir" . | quote }}
  readOnly: true
{{- end }}
{{- end }}

{{/* Dask's own config env (read by `dask scheduler`, `dask worker`, every distributed Client
     and by the simmate-k8s CLI, simmate_k8s.settings): encryption required, the CA, and the
     pair for each role the process plays. (dict "root" $ "roles" (list "worker" "client")) */}}
{{- define "simmate.daskTlsEnv" -}}
{{- if include "simmate.daskTls" .root }}
{{- $dir := include "simmate.daskTlsDir" .root -}}
- name: DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION
  value: "True"
- name: DASK_DISTRIBUTED__COMM__TLS__CA_FILE
  value: {{ printf "%s/ca.crt" $dir | quote }}
{{- range .roles }}
- name: {{ printf "DASK_DISTRIBUTED__COMM__TLS__%s__CERT" (upper .) }}
  value: {{ printf "%s/tls.crt" $dir | quote }}
- name: {{ printf "DASK_DISTRIBUTED__COMM__TLS__%s__KEY" (upper .) }}
  value: {{ printf "%s/tls.key" $dir | quote }}
{{- end }}
{{- end }}
{{- end }}
