{{/* Rules across keys, in the same words as simmate_k8s.values.model.combination_problems.
     The JSON schema checks types and unknown keys; this checks combinations. All problems are
     reported together in one message. */}}
{{- define "simmate.validateValues" -}}
{{- $v := .Values }}
{{- $ps := $v.prefectServer }}
{{- $pg := $v.postgresql }}
{{- $ext := $v.externalDatabase }}
{{- $problems := list }}
{{- if and $pg.enabled $ext.host }}
{{- $problems = append $problems "postgresql.enabled and externalDatabase.host are both set: choose one" }}
{{- end }}
{{- if and $ps.enabled (not $pg.enabled) (not $ext.host) }}
{{- $problems = append $problems "prefectServer needs a database: enable postgresql or set externalDatabase.host" }}
{{- end }}
{{- if and $ext.host (not $ext.existingSecret) }}
{{- $problems = append $problems "externalDatabase.host needs externalDatabase.existingSecret (the password)" }}
{{- end }}
{{- if and (or $v.dask.enabled $v.agent.enabled) (not $pg.enabled) (not $v.results.existingSecret) }}
{{- $problems = append $problems "the results DB needs postgresql.enabled or results.existingSecret" }}
{{- end }}
{{- if gt (int $v.dask.autoscaler.minimum) (int $v.dask.autoscaler.maximum) }}
{{- $problems = append $problems "dask.autoscaler.minimum is larger than dask.autoscaler.maximum" }}
{{- end }}
{{- /* The operator scales a fresh worker away before it registers ("Retired workers {}"). */}}
{{- $replicas := $v.dask.worker.replicas }}
{{- if and $v.dask.autoscaler.enabled (not (kindIs "invalid" $replicas)) (ne (int $replicas) (int $v.dask.autoscaler.minimum)) }}
{{- $problems = append $problems "dask.worker.replicas must be empty or equal dask.autoscaler.minimum (autoscaler on)" }}
{{- end }}
{{- if not $v.image.repository }}
{{- $problems = append $problems "image.repository is not set: set --set image.repository=REGISTRY/simmate-k8s" }}
{{- end }}
{{- if and $ps.retention.enabled (not $ps.enabled) }}
{{- $problems = append $problems "prefectServer.retention.enabled needs prefectServer.enabled" }}
{{- end }}
{{- if and $v.agent.enabled (not $ps.enabled) (not $v.agent.apiUrl) }}
{{- $problems = append $problems "agent.enabled without prefectServer.enabled needs agent.apiUrl" }}
{{- end }}
{{- $roleNames := list $pg.username }}
{{- range $_, $role := $pg.roles }}{{ $roleNames = append $roleNames $role.name }}{{ end }}
{{- if ne (len $roleNames) (len (uniq $roleNames)) }}
{{- $problems = append $problems "postgresql.username and the postgresql.roles names must all differ" }}
{{- end }}
{{- /* The writer of an external results database may not create its tables. */}}
{{- if and $v.results.existingSecret $v.results.schema.enabled (not $v.results.schema.existingSecret) }}
{{- $problems = append $problems "results.existingSecret needs results.schema.existingSecret or schema.enabled=false" }}
{{- end }}
{{- $operator := index $v "dask-kubernetes-operator" }}
{{- $clusterRbac := true }}
{{- if and (hasKey $operator "rbac") (hasKey $operator.rbac "cluster") }}{{- $clusterRbac = $operator.rbac.cluster }}{{- end }}
{{- if and $v.daskOperator.enabled (ne $clusterRbac (has "--all-namespaces" ($operator.kopfArgs | default list))) }}
{{- $problems = append $problems "dask-kubernetes-operator: rbac.cluster and kopfArgs --all-namespaces must agree" }}
{{- end }}
{{- if eq $pg.resultsDatabase $pg.database }}
{{- $problems = append $problems "postgresql.resultsDatabase must differ from postgresql.database" }}
{{- end }}
{{- $np := $v.networkPolicy }}
{{- $peers := list $np.ingressController $np.daskOperator $np.prometheus }}
{{- range $_, $extra := $np.extraPeers }}{{- $peers = concat $peers $extra }}{{- end }}
{{- range $peers }}
{{- if eq (or (not (kindIs "invalid" .podSelector)) (not (kindIs "invalid" .namespaceSelector))) (not (kindIs "invalid" .ipBlock)) }}
{{- $problems = append $problems "networkPolicy peers need podSelector/namespaceSelector or ipBlock, not both" }}
{{- end }}
{{- end }}
{{- if not (hasKey $v.agent.jobPresets "default") }}
{{- $problems = append $problems "agent.jobPresets must contain `default`" }}
{{- end }}
{{- range $name, $_ := $v.agent.jobPresets }}
{{- if not (regexMatch "^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$" $name) }}
{{- $problems = append $problems "agent.jobPresets names must be DNS labels (a-z, 0-9, -)" }}
{{- end }}
{{- end }}
{{- $groups := list }}
{{- range $v.dask.workerGroups }}{{ $groups = append $groups .name }}{{ end }}
{{- if or (ne (len $groups) (len (uniq $groups))) (has "default" $groups) }}
{{- $problems = append $problems "dask.workerGroups names must be unique and not `default`" }}
{{- end }}
{{- if and $ps.ingress.enabled (not $ps.ingress.host) }}
{{- $problems = append $problems "prefectServer.ingress.enabled needs prefectServer.ingress.host" }}
{{- end }}
{{- if and $ps.ingress.basicAuth.enabled (not $ps.ingress.basicAuth.existingSecret) }}
{{- $problems = append $problems "prefectServer.ingress.basicAuth.enabled needs basicAuth.existingSecret" }}
{{- end }}
{{- $ing := $ps.ingress }}
{{- /* Prefect Server v1 has no auth; the basic-auth annotations are ingress-nginx's. */}}
{{- $nginxBasic := and $ing.basicAuth.enabled (eq ($ing.className | toString) "nginx") }}
{{- if and $ps.enabled $ing.enabled (not (or $nginxBasic $ing.authProvidedElsewhere)) }}
{{- $problems = append $problems "prefectServer.ingress needs auth: basicAuth (className nginx) or authProvidedElsewhere" }}
{{- end }}
{{- /* No authentication in Prefect Server v1: exposing it must be a decision. */}}
{{- if and (ne $ps.apollo.service.type "ClusterIP") (not $ps.apollo.service.allowExternal) }}
{{- $problems = append $problems "prefectServer.apollo.service NodePort/LoadBalancer needs allowExternal" }}
{{- end }}
{{- if and (ne $ps.ui.service.type "ClusterIP") (not $ps.ui.service.allowExternal) }}
{{- $problems = append $problems "prefectServer.ui.service NodePort/LoadBalancer needs allowExternal" }}
{{- end }}
{{- /* Anyone who reaches :8786 can run code on the workers unless it takes TLS client certs. */}}
{{- $tls := $v.dask.tls }}
{{- $service := $v.dask.scheduler.service }}
{{- if and (ne $service.type "ClusterIP") (not (and $tls.enabled $service.allowExternal)) }}
{{- $problems = append $problems "dask.scheduler.service NodePort/LoadBalancer needs dask.tls.enabled and allowExternal" }}
{{- end }}
{{- if and $tls.existingSecret $tls.certManager.issuerRef.name }}
{{- $problems = append $problems "dask.tls.existingSecret and dask.tls.certManager.issuerRef are both set: choose one" }}
{{- end }}
{{- $problems = uniq $problems }}
{{- if $problems }}
{{- fail (printf "\n\nsimmate: invalid values (%d problem(s)):\n  - %s\n" (len $problems) (join "\n  - " $problems)) }}
{{- end }}
{{- end }}
