{{/*
Names and labels.
*/}}
{{- define "gatehouse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gatehouse.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "gatehouse.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gatehouse.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gatehouse.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "gatehouse.labels" -}}
helm.sh/chart: {{ include "gatehouse.chart" . }}
{{ include "gatehouse.selectorLabels" . }}
app.kubernetes.io/version: {{ include "gatehouse.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: ext-authz
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "gatehouse.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "gatehouse.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "gatehouse.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{- define "gatehouse.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (include "gatehouse.imageTag" .) -}}
{{- end -}}
{{- end -}}

{{/*
Where the mounted files live in the container.
*/}}
{{- define "gatehouse.jwtDir" -}}/etc/gatehouse/jwt{{- end -}}
{{- define "gatehouse.addonsDir" -}}/etc/gatehouse/addons{{- end -}}
{{- define "gatehouse.usersDir" -}}/etc/gatehouse/users{{- end -}}
{{- define "gatehouse.routesDir" -}}/etc/gatehouse/routes{{- end -}}
{{- define "gatehouse.tlsDir" -}}/etc/gatehouse/tls{{- end -}}
{{- define "gatehouse.redisDir" -}}/etc/gatehouse/redis{{- end -}}
{{- define "gatehouse.originDir" -}}/etc/gatehouse/origin{{- end -}}
{{- define "gatehouse.oidcDir" -}}/etc/gatehouse/oidc{{- end -}}

{{/*
The Secret the chart creates for whatever is not taken from an existing one.
*/}}
{{- define "gatehouse.secretName" -}}
{{- include "gatehouse.fullname" . -}}
{{- end -}}

{{/*
gatehouse.jwtSecretRef: the Secret name and key of the JWT key, as YAML.
Fails when neither jwt.existingSecret nor jwt.secret is set.
*/}}
{{- define "gatehouse.jwtSecretRef" -}}
{{- if .Values.jwt.existingSecret -}}
name: {{ .Values.jwt.existingSecret }}
key: {{ required "jwt.existingSecretKey must not be empty" .Values.jwt.existingSecretKey }}
{{- else if .Values.jwt.secret -}}
name: {{ include "gatehouse.secretName" . }}
key: jwt-secret
{{- else -}}
{{- fail "gatehouse: set jwt.existingSecret (a Secret holding the HMAC key) or jwt.secret (the key; the chart stores it in a Secret)" -}}
{{- end -}}
{{- end -}}

{{/*
gatehouse.addonsSecretRef: the Secret name and key of the add-on tokens' key,
as YAML; empty without add-on tokens. Fails when they are asked for under a
profile that has none.
*/}}
{{- define "gatehouse.addonsSecretRef" -}}
{{- $a := .Values.addons -}}
{{- if or $a.existingSecret $a.secret -}}
{{- if ne (toString (.Values.meetProfile | default (get .Values.config "GATEHOUSE_MEET_PROFILE"))) "2026.08" -}}
{{- fail "gatehouse: add-on tokens (addons.secret, addons.existingSecret) need meetProfile: \"2026.08\"" -}}
{{- end -}}
{{- end -}}
{{- if $a.existingSecret -}}
name: {{ $a.existingSecret }}
key: {{ required "addons.existingSecretKey must not be empty" $a.existingSecretKey }}
{{- else if $a.secret -}}
name: {{ include "gatehouse.secretName" . }}
key: addons-jwt-secret
{{- end -}}
{{- end -}}

{{/*
gatehouse.directory: "redis" or "users"; fails unless exactly one is configured.
With directoryOrigin.url: "redis" (Redis is the origin's cache) or "origin"
(no Redis); users must then be empty.
*/}}
{{- define "gatehouse.directory" -}}
{{- $r := .Values.redis -}}
{{- $redis := or $r.url $r.existingSecret.urlKey $r.sentinel.addrs $r.clusterAddrs -}}
{{- $users := or .Values.users.file .Values.users.existingSecret -}}
{{- $origin := .Values.directoryOrigin.url -}}
{{- if and $origin $users -}}
{{- fail "gatehouse: directoryOrigin.url is the directory of record: leave users empty (redis may be its cache)" -}}
{{- else if and $origin $redis -}}
redis
{{- else if $origin -}}
origin
{{- else if and $redis $users -}}
{{- fail "gatehouse: configure one user directory: redis (redis.url, redis.sentinel or redis.clusterAddrs) or users (users.file or users.existingSecret), not both" -}}
{{- else if $redis -}}
redis
{{- else if $users -}}
users
{{- else if or $r.password $r.existingSecret.name $r.sentinel.master -}}
{{- fail "gatehouse: Redis credentials are set but no Redis address: set redis.url (or redis.existingSecret.urlKey), redis.sentinel.addrs or redis.clusterAddrs" -}}
{{- else -}}
{{- fail "gatehouse: no user directory: set directoryOrigin.url for Meet's database, redis.url (or redis.existingSecret.urlKey), redis.sentinel.addrs or redis.clusterAddrs for Redis, or users.file (or users.existingSecret) for a static users file" -}}
{{- end -}}
{{- end -}}

{{/*
gatehouse.redisFiles: the files of the projected "redis" volume, as a YAML
list of {env, secret, key, path}: passwords and TLS material, each from the
chart's Secret or an existing one. Fails on contradictory settings.
*/}}
{{- define "gatehouse.redisFiles" -}}
{{- $r := .Values.redis -}}
{{- $ex := $r.existingSecret -}}
{{- $chart := include "gatehouse.secretName" . -}}
{{- if and $r.url $ex.urlKey -}}
{{- fail "gatehouse: set one of redis.url and redis.existingSecret.urlKey" -}}
{{- end -}}
{{- if and $r.password $ex.passwordKey -}}
{{- fail "gatehouse: set one of redis.password and redis.existingSecret.passwordKey" -}}
{{- end -}}
{{- if and $r.sentinel.password $ex.sentinelPasswordKey -}}
{{- fail "gatehouse: set one of redis.sentinel.password and redis.existingSecret.sentinelPasswordKey" -}}
{{- end -}}
{{- if and (or $ex.urlKey $ex.passwordKey $ex.sentinelPasswordKey) (not $ex.name) -}}
{{- fail "gatehouse: redis.existingSecret.name is required with its keys" -}}
{{- end -}}
{{- if and $ex.name (not (or $ex.urlKey $ex.passwordKey $ex.sentinelPasswordKey)) -}}
{{- fail "gatehouse: redis.existingSecret.name needs urlKey, passwordKey or sentinelPasswordKey" -}}
{{- end -}}
{{- if and $r.sentinel.addrs $r.clusterAddrs -}}
{{- fail "gatehouse: set one of redis.sentinel.addrs and redis.clusterAddrs" -}}
{{- end -}}
{{- if and $r.sentinel.addrs (not $r.sentinel.master) -}}
{{- fail "gatehouse: redis.sentinel.addrs needs redis.sentinel.master (the master's name)" -}}
{{- end -}}
{{- if ne (empty $r.tls.certKey) (empty $r.tls.keyKey) -}}
{{- fail "gatehouse: set both redis.tls.certKey and redis.tls.keyKey (a client certificate and its key), or neither" -}}
{{- end -}}
{{- if and (not $r.tls.existingSecret) (or $r.tls.certKey $r.tls.caKey) -}}
{{- fail "gatehouse: redis.tls.caKey, certKey and keyKey need redis.tls.existingSecret" -}}
{{- end -}}
{{- if $r.password }}
- {env: GATEHOUSE_REDIS_PASSWORD_FILE, secret: {{ $chart }}, key: redis-password, path: password}
{{- else if $ex.passwordKey }}
- {env: GATEHOUSE_REDIS_PASSWORD_FILE, secret: {{ $ex.name }}, key: {{ $ex.passwordKey }}, path: password}
{{- end }}
{{- if $r.sentinel.password }}
- {env: GATEHOUSE_REDIS_SENTINEL_PASSWORD_FILE, secret: {{ $chart }}, key: redis-sentinel-password, path: sentinel-password}
{{- else if $ex.sentinelPasswordKey }}
- {env: GATEHOUSE_REDIS_SENTINEL_PASSWORD_FILE, secret: {{ $ex.name }}, key: {{ $ex.sentinelPasswordKey }}, path: sentinel-password}
{{- end }}
{{- with $r.tls.existingSecret }}
{{- if $r.tls.caKey }}
- {env: GATEHOUSE_REDIS_TLS_CA_FILE, secret: {{ . }}, key: {{ $r.tls.caKey }}, path: ca.crt}
{{- end }}
{{- if $r.tls.certKey }}
- {env: GATEHOUSE_REDIS_TLS_CERT_FILE, secret: {{ . }}, key: {{ $r.tls.certKey }}, path: tls.crt}
- {env: GATEHOUSE_REDIS_TLS_KEY_FILE, secret: {{ . }}, key: {{ $r.tls.keyKey }}, path: tls.key}
{{- end }}
{{- end }}
{{- end -}}

{{/*
gatehouse.originFiles: the files of the projected "origin" volume, as a YAML
list of {env, secret, key, path}: the database password and the CA
certificate, from existing Secrets. Fails on contradictory settings.
*/}}
{{- define "gatehouse.originFiles" -}}
{{- $o := .Values.directoryOrigin -}}
{{- if $o.url -}}
{{- if not (regexMatch "^(postgres|postgresql|grpc|grpcs)://" $o.url) -}}
{{- fail "gatehouse: directoryOrigin.url must start with postgres://, postgresql://, grpc:// or grpcs://" -}}
{{- end -}}
{{- if regexMatch "^[a-z]+://[^/@?#]*:[^/@?#]*@" $o.url -}}
{{- fail "gatehouse: directoryOrigin.url holds a password: put it in a Secret named by directoryOrigin.passwordSecret" -}}
{{- end -}}
{{- if regexMatch "[?&]password=" $o.url -}}
{{- fail "gatehouse: directoryOrigin.url holds a password: put it in a Secret named by directoryOrigin.passwordSecret" -}}
{{- end -}}
{{- end -}}
{{- if and $o.passwordSecret.name (not (regexMatch "^postgres(ql)?://" $o.url)) -}}
{{- fail "gatehouse: directoryOrigin.passwordSecret is for a postgres:// directoryOrigin.url" -}}
{{- end -}}
{{- if and $o.caSecret.name (not (hasPrefix "grpcs://" $o.url)) -}}
{{- fail "gatehouse: directoryOrigin.caSecret is for a grpcs:// directoryOrigin.url" -}}
{{- end -}}
{{- with $o.passwordSecret.name }}
- {env: GATEHOUSE_DIRECTORY_ORIGIN_PASSWORD_FILE, secret: {{ . }}, key: {{ required "directoryOrigin.passwordSecret.key must not be empty" $o.passwordSecret.key }}, path: password}
{{- end }}
{{- with $o.caSecret.name }}
- {env: GATEHOUSE_DIRECTORY_ORIGIN_CA_FILE, secret: {{ . }}, key: {{ required "directoryOrigin.caSecret.key must not be empty" $o.caSecret.key }}, path: ca.crt}
{{- end }}
{{- end -}}

{{/*
gatehouse.oidcURL: the introspection endpoint, from oidc.introspectionUrl or
config (empty: OIDC access tokens are off).
*/}}
{{- define "gatehouse.oidcURL" -}}
{{- .Values.oidc.introspectionUrl | default (get .Values.config "GATEHOUSE_OIDC_INTROSPECTION_URL") -}}
{{- end -}}

{{/*
gatehouse.oidcFiles: the files of the projected "oidc" volume, as a YAML list
of {env, secret, key, path}: the client secret (from the chart's Secret or an
existing one), the decryption key and the provider's CA (from existing
Secrets). Fails on what gatehouse would refuse at start, and on oidc values
set without the introspection endpoint, which would do nothing.
*/}}
{{- define "gatehouse.oidcFiles" -}}
{{- $o := .Values.oidc -}}
{{- $origin := .Values.directoryOrigin -}}
{{- $url := include "gatehouse.oidcURL" . -}}
{{- if $url -}}
{{- if ne (toString (.Values.meetProfile | default (get .Values.config "GATEHOUSE_MEET_PROFILE"))) "2026.08" -}}
{{- fail "gatehouse: OIDC access tokens (oidc.introspectionUrl) need meetProfile: \"2026.08\"" -}}
{{- end -}}
{{- if not ($o.issuer | default (get .Values.config "GATEHOUSE_OIDC_ISSUER")) -}}
{{- fail "gatehouse: oidc.introspectionUrl needs oidc.issuer (the provider's URL, the iss of its answers; Meet's OIDC_OP_URL)" -}}
{{- end -}}
{{- if not (or $o.clientSecret $o.existingSecret) -}}
{{- fail "gatehouse: oidc.introspectionUrl needs the client's secret at the provider: oidc.clientSecret (the chart stores it in a Secret) or oidc.existingSecret" -}}
{{- end -}}
{{- if regexMatch "^grpcs?://" $origin.url -}}
{{- fail "gatehouse: oidc.introspectionUrl needs a directory that finds users by sub, which a grpc:// or grpcs:// directoryOrigin.url cannot: use Meet's database (postgres://), Redis or a users file" -}}
{{- end -}}
{{- if and $o.encryptionKeySecret.name (not ($o.jwksUrl | default (get .Values.config "GATEHOUSE_OIDC_JWKS_URL"))) -}}
{{- fail "gatehouse: oidc.encryptionKeySecret needs oidc.jwksUrl (only JWT answers are encrypted)" -}}
{{- end -}}
{{- else -}}
{{- $values := dict
  "oidc.issuer" $o.issuer "oidc.clientId" $o.clientId "oidc.clientSecret" $o.clientSecret
  "oidc.existingSecret" $o.existingSecret "oidc.clientAuth" $o.clientAuth
  "oidc.requiredScopes" $o.requiredScopes "oidc.audienceClaim" $o.audienceClaim
  "oidc.timeout" $o.timeout "oidc.caSecret.name" $o.caSecret.name "oidc.jwksUrl" $o.jwksUrl
  "oidc.signingAlgorithm" $o.signingAlgorithm "oidc.encryptionKeySecret.name" $o.encryptionKeySecret.name
  "oidc.encryptionAlgorithm" $o.encryptionAlgorithm "oidc.encryptionEncoding" $o.encryptionEncoding
  "oidc.cacheTTL" $o.cacheTTL "oidc.negativeCacheTTL" $o.negativeCacheTTL
  "directoryOrigin.subQuery" $origin.subQuery
-}}
{{- $set := list -}}
{{- range $name, $val := $values -}}
{{- if not (or (kindIs "invalid" $val) (eq (toString $val) "")) -}}
{{- $set = append $set $name -}}
{{- end -}}
{{- end -}}
{{- if $set -}}
{{- fail (printf "gatehouse: %s set without oidc.introspectionUrl, where OIDC access tokens are off: set oidc.introspectionUrl, or leave them unset" (join ", " $set)) -}}
{{- end -}}
{{- end -}}
{{- if and $origin.subQuery (not (regexMatch "^postgres(ql)?://" $origin.url)) -}}
{{- fail "gatehouse: directoryOrigin.subQuery is for a postgres:// directoryOrigin.url" -}}
{{- end -}}
{{- if $url -}}
{{- if $o.existingSecret }}
- {env: GATEHOUSE_OIDC_CLIENT_SECRET_FILE, secret: {{ $o.existingSecret }}, key: {{ required "oidc.existingSecretKey must not be empty" $o.existingSecretKey }}, path: client-secret}
{{- else }}
- {env: GATEHOUSE_OIDC_CLIENT_SECRET_FILE, secret: {{ include "gatehouse.secretName" . }}, key: oidc-client-secret, path: client-secret}
{{- end }}
{{- with $o.caSecret.name }}
- {env: GATEHOUSE_OIDC_CA_FILE, secret: {{ . }}, key: {{ required "oidc.caSecret.key must not be empty" $o.caSecret.key }}, path: ca.crt}
{{- end }}
{{- with $o.encryptionKeySecret.name }}
- {env: GATEHOUSE_OIDC_ENCRYPTION_KEY_FILE, secret: {{ . }}, key: {{ required "oidc.encryptionKeySecret.key must not be empty" $o.encryptionKeySecret.key }}, path: encryption-key}
{{- end }}
{{- end }}
{{- end -}}

{{/*
gatehouse.oidcPorts: the ports of the introspection endpoint and the JWKS,
space-separated (443 for https, 80 for http, unless the URL names one);
empty when OIDC access tokens are off.
*/}}
{{/*
gatehouse.originPort: the port of directoryOrigin.url (empty: no origin):
the URL's own, else 5432 for postgres:// and postgresql://, 443 for
grpcs://, 80 for grpc://.
*/}}
{{- define "gatehouse.originPort" -}}
{{- with .Values.directoryOrigin.url -}}
{{- $u := urlParse . -}}
{{- $port := trimPrefix ":" (regexFind ":[0-9]+$" $u.host) -}}
{{- if not $port -}}
{{- $port = get (dict "postgres" "5432" "postgresql" "5432" "grpcs" "443" "grpc" "80") $u.scheme -}}
{{- end -}}
{{- $port -}}
{{- end -}}
{{- end -}}

{{- define "gatehouse.oidcPorts" -}}
{{- $url := include "gatehouse.oidcURL" . -}}
{{- if $url -}}
{{- $ports := list -}}
{{- range list $url (.Values.oidc.jwksUrl | default (get .Values.config "GATEHOUSE_OIDC_JWKS_URL")) -}}
{{- if . -}}
{{- $u := urlParse . -}}
{{- $port := trimPrefix ":" (regexFind ":[0-9]+$" $u.host) -}}
{{- if not $port -}}
{{- $port = ternary "443" "80" (eq $u.scheme "https") -}}
{{- end -}}
{{- $ports = append $ports $port | uniq -}}
{{- end -}}
{{- end -}}
{{- join " " $ports -}}
{{- end -}}
{{- end -}}

{{/*
gatehouse.chartSecretData: the data of the Secret the chart creates for what
is not taken from an existing one (empty: no Secret).
*/}}
{{- define "gatehouse.chartSecretData" -}}
{{- if and (not .Values.jwt.existingSecret) .Values.jwt.secret }}
jwt-secret: {{ .Values.jwt.secret | b64enc | quote }}
{{- end }}
{{- if and (not .Values.addons.existingSecret) .Values.addons.secret }}
addons-jwt-secret: {{ .Values.addons.secret | b64enc | quote }}
{{- end }}
{{- if and (include "gatehouse.oidcURL" .) (not .Values.oidc.existingSecret) .Values.oidc.clientSecret }}
oidc-client-secret: {{ .Values.oidc.clientSecret | b64enc | quote }}
{{- end }}
{{- if eq (include "gatehouse.directory" .) "redis" }}
{{- if include "gatehouse.redisURLIsSecret" . }}
redis-url: {{ .Values.redis.url | b64enc | quote }}
{{- end }}
{{- with .Values.redis.password }}
redis-password: {{ . | b64enc | quote }}
{{- end }}
{{- with .Values.redis.sentinel.password }}
redis-sentinel-password: {{ . | b64enc | quote }}
{{- end }}
{{- end }}
{{- if and (eq (include "gatehouse.directory" .) "users") (not .Values.users.existingSecret) }}
users.yaml: {{ .Values.users.file | b64enc | quote }}
{{- end }}
{{- end -}}

{{/*
gatehouse.routesData: the routes ConfigMap's data, empty with a built-in table.
*/}}
{{- define "gatehouse.routesData" -}}
{{- if .Values.routes.file }}
routes.yaml: |
{{ .Values.routes.file | indent 2 }}
{{- end }}
{{- end -}}

{{/*
gatehouse.reservedConfig: the GATEHOUSE_* settings the chart controls itself.
*/}}
{{- define "gatehouse.reservedConfig" -}}
GATEHOUSE_GRPC_ADDR GATEHOUSE_HTTP_ADDR GATEHOUSE_OPS_ADDR GATEHOUSE_SHUTDOWN_TIMEOUT GATEHOUSE_DRAIN_PERIOD GATEHOUSE_TLS_CERT_FILE GATEHOUSE_TLS_KEY_FILE GATEHOUSE_TLS_CLIENT_CA_FILE GATEHOUSE_JWT_SECRET GATEHOUSE_JWT_SECRET_FILE GATEHOUSE_ADDONS_JWT_SECRET GATEHOUSE_ADDONS_JWT_SECRET_FILE GATEHOUSE_REDIS_URL GATEHOUSE_REDIS_PASSWORD GATEHOUSE_REDIS_PASSWORD_FILE GATEHOUSE_REDIS_SENTINEL_ADDRS GATEHOUSE_REDIS_SENTINEL_PASSWORD GATEHOUSE_REDIS_SENTINEL_PASSWORD_FILE GATEHOUSE_REDIS_CLUSTER_ADDRS GATEHOUSE_REDIS_TLS_CA_FILE GATEHOUSE_REDIS_TLS_CERT_FILE GATEHOUSE_REDIS_TLS_KEY_FILE GATEHOUSE_USERS_FILE GATEHOUSE_ROUTES GATEHOUSE_DIRECTORY_ORIGIN GATEHOUSE_DIRECTORY_ORIGIN_PASSWORD_FILE GATEHOUSE_DIRECTORY_ORIGIN_CA_FILE GATEHOUSE_OIDC_CLIENT_SECRET GATEHOUSE_OIDC_CLIENT_SECRET_FILE GATEHOUSE_OIDC_CA_FILE GATEHOUSE_OIDC_ENCRYPTION_KEY_FILE
{{- end -}}

{{/*
gatehouse.config: every non-secret GATEHOUSE_* variable, as a YAML map of
strings: what the chart controls, the first-class values that are set, then
config. A first-class value and the same variable in config is an error.
*/}}
{{- define "gatehouse.config" -}}
{{- $v := .Values -}}
{{- $env := dict -}}
{{- $_ := set $env "GATEHOUSE_GRPC_ADDR" (printf ":%d" (int $v.ports.grpc)) -}}
{{- $_ := set $env "GATEHOUSE_HTTP_ADDR" (printf ":%d" (int $v.ports.http)) -}}
{{- $_ := set $env "GATEHOUSE_OPS_ADDR" (printf ":%d" (int $v.ports.metrics)) -}}
{{- $_ := set $env "GATEHOUSE_SHUTDOWN_TIMEOUT" (printf "%ds" (int $v.shutdownTimeoutSeconds)) -}}
{{- $_ := set $env "GATEHOUSE_DRAIN_PERIOD" (printf "%ds" (int $v.drainSeconds)) -}}
{{- if include "gatehouse.tlsSecretName" . -}}
{{- $_ := set $env "GATEHOUSE_TLS_CERT_FILE" (printf "%s/tls.crt" (include "gatehouse.tlsDir" .)) -}}
{{- $_ := set $env "GATEHOUSE_TLS_KEY_FILE" (printf "%s/tls.key" (include "gatehouse.tlsDir" .)) -}}
{{- if $v.tls.clientAuth.enabled -}}
{{- $_ := set $env "GATEHOUSE_TLS_CLIENT_CA_FILE" (printf "%s/client-ca.crt" (include "gatehouse.tlsDir" .)) -}}
{{- end -}}
{{- end -}}
{{- $ref := include "gatehouse.jwtSecretRef" . | fromYaml -}}
{{- $_ := set $env "GATEHOUSE_JWT_SECRET_FILE" (printf "%s/%s" (include "gatehouse.jwtDir" .) $ref.key) -}}
{{- with include "gatehouse.addonsSecretRef" . | fromYaml -}}
{{- $_ := set $env "GATEHOUSE_ADDONS_JWT_SECRET_FILE" (printf "%s/%s" (include "gatehouse.addonsDir" $) .key) -}}
{{- end -}}
{{- if eq (include "gatehouse.directory" .) "redis" -}}
{{- range include "gatehouse.redisFiles" . | fromYamlArray -}}
{{- $_ := set $env .env (printf "%s/%s" (include "gatehouse.redisDir" $) .path) -}}
{{- end -}}
{{- if and $v.redis.url (not (include "gatehouse.redisURLIsSecret" .)) -}}
{{- $_ := set $env "GATEHOUSE_REDIS_URL" $v.redis.url -}}
{{- end -}}
{{- with $v.redis.sentinel.addrs -}}
{{- $_ := set $env "GATEHOUSE_REDIS_SENTINEL_ADDRS" (join "," .) -}}
{{- end -}}
{{- with $v.redis.clusterAddrs -}}
{{- $_ := set $env "GATEHOUSE_REDIS_CLUSTER_ADDRS" (join "," .) -}}
{{- end -}}
{{- end -}}
{{- with $v.directoryOrigin.url -}}
{{- $_ := set $env "GATEHOUSE_DIRECTORY_ORIGIN" . -}}
{{- range include "gatehouse.originFiles" $ | fromYamlArray -}}
{{- $_ := set $env .env (printf "%s/%s" (include "gatehouse.originDir" $) .path) -}}
{{- end -}}
{{- end -}}
{{- range include "gatehouse.oidcFiles" . | fromYamlArray -}}
{{- $_ := set $env .env (printf "%s/%s" (include "gatehouse.oidcDir" $) .path) -}}
{{- end -}}
{{- if eq (include "gatehouse.directory" .) "users" -}}
{{- $key := ternary $v.users.existingSecretKey "users.yaml" (ne $v.users.existingSecret "") -}}
{{- $_ := set $env "GATEHOUSE_USERS_FILE" (printf "%s/%s" (include "gatehouse.usersDir" .) $key) -}}
{{- end -}}
{{- if $v.routes.file -}}
{{- $_ := set $env "GATEHOUSE_ROUTES" (printf "%s/routes.yaml" (include "gatehouse.routesDir" .)) -}}
{{- else if $v.routes.builtin -}}
{{- $_ := set $env "GATEHOUSE_ROUTES" $v.routes.builtin -}}
{{- end -}}
{{- $first := dict
  "GATEHOUSE_JWT_ALGORITHM" $v.jwt.algorithm
  "GATEHOUSE_JWT_ISSUER" $v.jwt.issuer
  "GATEHOUSE_JWT_AUDIENCE" $v.jwt.audience
  "GATEHOUSE_JWT_LEEWAY" $v.jwt.leeway
  "GATEHOUSE_JWT_REQUIRE_EXP" $v.jwt.requireExp
  "GATEHOUSE_MEET_PROFILE" $v.meetProfile
  "GATEHOUSE_ADDONS_JWT_ALGORITHM" $v.addons.algorithm
  "GATEHOUSE_ADDONS_JWT_ISSUER" $v.addons.issuer
  "GATEHOUSE_ADDONS_JWT_AUDIENCE" $v.addons.audience
  "GATEHOUSE_SCOPES_PREFIX" $v.scopesPrefix
  "GATEHOUSE_OIDC_INTROSPECTION_URL" (ternary nil $v.oidc.introspectionUrl (empty $v.oidc.introspectionUrl))
  "GATEHOUSE_OIDC_ISSUER" $v.oidc.issuer
  "GATEHOUSE_OIDC_CLIENT_ID" $v.oidc.clientId
  "GATEHOUSE_OIDC_CLIENT_AUTH" $v.oidc.clientAuth
  "GATEHOUSE_OIDC_REQUIRED_SCOPES" (ternary (join "," $v.oidc.requiredScopes) $v.oidc.requiredScopes (kindIs "slice" $v.oidc.requiredScopes))
  "GATEHOUSE_OIDC_AUDIENCE_CLAIM" $v.oidc.audienceClaim
  "GATEHOUSE_OIDC_TIMEOUT" $v.oidc.timeout
  "GATEHOUSE_OIDC_JWKS_URL" $v.oidc.jwksUrl
  "GATEHOUSE_OIDC_SIGNING_ALGORITHM" $v.oidc.signingAlgorithm
  "GATEHOUSE_OIDC_ENCRYPTION_ALGORITHM" $v.oidc.encryptionAlgorithm
  "GATEHOUSE_OIDC_ENCRYPTION_ENCODING" $v.oidc.encryptionEncoding
  "GATEHOUSE_OIDC_CACHE_TTL" $v.oidc.cacheTTL
  "GATEHOUSE_OIDC_NEGATIVE_CACHE_TTL" $v.oidc.negativeCacheTTL
  "GATEHOUSE_REDIS_USERNAME" $v.redis.username
  "GATEHOUSE_REDIS_SENTINEL_MASTER" (ternary nil $v.redis.sentinel.master (empty $v.redis.sentinel.master))
  "GATEHOUSE_REDIS_TLS_SERVER_NAME" $v.redis.tls.serverName
  "GATEHOUSE_REDIS_PREFIX" $v.redis.prefix
  "GATEHOUSE_REDIS_TIMEOUT" $v.redis.timeout
  "GATEHOUSE_DIRECTORY_USER_QUERY" $v.directoryOrigin.userQuery
  "GATEHOUSE_DIRECTORY_APP_QUERY" $v.directoryOrigin.appQuery
  "GATEHOUSE_DIRECTORY_SUB_QUERY" $v.directoryOrigin.subQuery
  "GATEHOUSE_REDIS_CACHE_TTL" $v.directoryOrigin.redisCacheTTL
  "GATEHOUSE_REDIS_CACHE_NEGATIVE_TTL" $v.directoryOrigin.redisCacheNegativeTTL
  "GATEHOUSE_CACHE_TTL" $v.cache.ttl
  "GATEHOUSE_CACHE_NEGATIVE_TTL" $v.cache.negativeTTL
  "GATEHOUSE_CACHE_SIZE" $v.cache.size
  "GATEHOUSE_CACHE_STALE_IF_ERROR" $v.cache.staleIfError
  "GATEHOUSE_CHECK_APPLICATIONS" $v.checkApplications
  "GATEHOUSE_USER_ID_FORMAT" $v.userIdFormat
  "GATEHOUSE_REALM" $v.realm
  "GATEHOUSE_HTTP_PATH_PREFIX" $v.httpPathPrefix
  "GATEHOUSE_HEADER_USER_ID" $v.identityHeaders.userId
  "GATEHOUSE_HEADER_CLIENT_ID" $v.identityHeaders.clientId
  "GATEHOUSE_HEADER_SCOPE" $v.identityHeaders.scope
  "GATEHOUSE_LOG_LEVEL" $v.log.level
  "GATEHOUSE_LOG_FORMAT" $v.log.format
  "GATEHOUSE_LOG_RATE" $v.log.rate
  "GATEHOUSE_OTEL_ENDPOINT" $v.otel.endpoint
  "GATEHOUSE_OTEL_INSECURE" $v.otel.insecure
  "GATEHOUSE_OTEL_SAMPLE_RATIO" $v.otel.sampleRatio
  "GATEHOUSE_GRPC_MAX_RECV_SIZE" $v.grpc.maxRecvSize
  "GATEHOUSE_GRPC_MAX_CONNECTION_IDLE" $v.grpc.maxConnectionIdle
-}}
{{- range $name, $val := $first -}}
{{- if not (kindIs "invalid" $val) -}}
{{- if hasKey $v.config $name -}}
{{- fail (printf "gatehouse: %s is set twice, by a first-class value and by config.%s; keep one" $name $name) -}}
{{- end -}}
{{- $_ := set $env $name (include "gatehouse.envString" $val) -}}
{{- end -}}
{{- end -}}
{{- $reserved := splitList " " (include "gatehouse.reservedConfig" .) -}}
{{- range $name, $val := $v.config -}}
{{- if has $name $reserved -}}
{{- fail (printf "gatehouse: config.%s is controlled by the chart; use its own value (see values.yaml)" $name) -}}
{{- end -}}
{{- if not (kindIs "invalid" $val) -}}
{{- $_ := set $env $name (include "gatehouse.envString" $val) -}}
{{- end -}}
{{- end -}}
{{- toYaml $env -}}
{{- end -}}

{{/*
gatehouse.envString renders a value as an environment string: whole numbers
without an exponent (YAML numbers arrive as float64), booleans as true/false.
*/}}
{{- define "gatehouse.envString" -}}
{{- if and (kindIs "float64" .) (eq . (floor .)) -}}
{{- int64 . -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/*
gatehouse.replicas: how many pods run at least (for the PDB).
*/}}
{{- define "gatehouse.minReplicas" -}}
{{- if .Values.autoscaling.enabled -}}
{{- .Values.autoscaling.minReplicas -}}
{{- else -}}
{{- .Values.replicaCount -}}
{{- end -}}
{{- end -}}

{{/*
gatehouse.terminationGracePeriodSeconds: the preStop sleep, the drain, the
graceful stop and a margin, so the kubelet never kills a pod still draining.
*/}}
{{- define "gatehouse.terminationGracePeriodSeconds" -}}
{{- add (int .Values.preStopSleepSeconds) (int .Values.drainSeconds) (int .Values.shutdownTimeoutSeconds) 5 -}}
{{- end -}}

{{/*
gatehouse.tlsSecretName: the Secret holding the listeners' certificate and
key (empty: TLS off). Refuses TLS without a source of certificates.
*/}}
{{- define "gatehouse.tlsSecretName" -}}
{{- $t := .Values.tls -}}
{{- if $t.enabled -}}
{{- if and $t.existingSecret $t.certManager.enabled -}}
{{- fail "gatehouse: set one of tls.existingSecret and tls.certManager.enabled" -}}
{{- else if $t.existingSecret -}}
{{- $t.existingSecret -}}
{{- else if $t.certManager.enabled -}}
{{- if not $t.certManager.issuerRef.name -}}
{{- fail "gatehouse: tls.certManager.issuerRef.name is required" -}}
{{- end -}}
{{- include "gatehouse.fullname" . }}-tls
{{- else -}}
{{- fail "gatehouse: tls.enabled needs tls.existingSecret or tls.certManager.enabled" -}}
{{- end -}}
{{- else if or $t.clientAuth.enabled $t.certManager.enabled $t.existingSecret -}}
{{- fail "gatehouse: tls.existingSecret, tls.certManager and tls.clientAuth need tls.enabled" -}}
{{- end -}}
{{- end -}}

{{/*
gatehouse.otelEnabled: "true" when tracing is configured.
*/}}
{{- define "gatehouse.otelEnabled" -}}
{{- if or .Values.otel.endpoint (get .Values.config "GATEHOUSE_OTEL_ENDPOINT") -}}true{{- end -}}
{{- end -}}

{{/*
gatehouse.redisURLIsSecret: "true" when redis.url holds a password: it then
goes to the chart's Secret, else to the ConfigMap with the other settings.
*/}}
{{- define "gatehouse.redisURLIsSecret" -}}
{{- with .Values.redis.url -}}
{{- if contains ":" (urlParse .).userinfo -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{/*
gatehouse.redisEnv: the container env entry of a Redis URL that holds
credentials, from a Secret.
*/}}
{{- define "gatehouse.redisEnv" -}}
{{- $r := .Values.redis -}}
{{- if $r.existingSecret.urlKey }}
- name: GATEHOUSE_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $r.existingSecret.name }}
      key: {{ $r.existingSecret.urlKey }}
{{- else if include "gatehouse.redisURLIsSecret" . }}
- name: GATEHOUSE_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "gatehouse.secretName" . }}
      key: redis-url
{{- end }}
{{- end -}}
