{{/* The prefix of every object's name: the release's name, with the chart's name unless it already has it. */}}
{{- define "kiruna.prefix" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object (with "kiruna.selector" or "kiruna.instance" beside them). */}}
{{- define "kiruna.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/part-of: kiruna-innovation
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "kiruna.instance" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Selector labels of one service: (dict "root" $ "name" "intake"). */}}
{{- define "kiruna.selector" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/* The ConfigMap holding kiruna.toml. */}}
{{- define "kiruna.catalogueConfigMap" -}}
{{- .Values.catalogue.existingConfigMap | default (printf "%s-catalogue" (include "kiruna.prefix" .)) -}}
{{- end -}}

{{/* Environment variables that carry secrets: they may only come from a Secret (secretEnv), never from `env`. */}}
{{- define "kiruna.secretNamePattern" -}}
(SECRET|PASSWORD|PASSWD|TOKEN|KEK|PEPPER|PRIVATE|CREDENTIAL|WEBHOOKS|^REDIS_URL$)
{{- end -}}

{{/* The values everything needs, checked once with a message that names the value. */}}
{{- define "kiruna.validate" -}}
{{- $ := . -}}
{{- $_ := required "kafka.bootstrapServers is required: the existing Kafka cluster's brokers (host:port,host:port)" .Values.kafka.bootstrapServers -}}
{{- $_ := required "oidc.issuerUrl is required: the OpenID Connect issuer (https://login.example.se/realms/kiruna)" .Values.oidc.issuerUrl -}}
{{- if not (or .Values.catalogue.toml .Values.catalogue.existingConfigMap) -}}
{{- fail "the catalogue is missing: give --set-file catalogue.toml=catalogue/kiruna.toml or catalogue.existingConfigMap" -}}
{{- end -}}
{{- if lt (int .Values.kafka.partitions) 1 -}}
{{- fail (printf "kafka.partitions must be at least 1, not %v" .Values.kafka.partitions) -}}
{{- end -}}
{{- range $name, $svc := .Values.services -}}
{{- range $variable, $value := $svc.env -}}
{{- if regexMatch (include "kiruna.secretNamePattern" $) $variable -}}
{{- fail (printf "services.%s.env.%s looks like a secret: give it as services.%s.secretEnv.%s: {name: <Secret>, key: <key>}, never as a value" $name $variable $name $variable) -}}
{{- end -}}
{{- end -}}
{{- range $variable, $ref := $svc.secretEnv -}}
{{- if not (and (kindIs "map" $ref) $ref.name $ref.key) -}}
{{- fail (printf "services.%s.secretEnv.%s must be {name: <Secret>, key: <key>}, a reference to a Secret, not a value" $name $variable) -}}
{{- end -}}
{{- end -}}
{{- if $svc.autoscaling.enabled -}}
{{- if gt (int $svc.autoscaling.maxReplicas) (int $.Values.kafka.partitions) -}}
{{- fail (printf "services.%s.autoscaling.maxReplicas is %v, more than kafka.partitions (%v): replicas beyond the partitions of its topics would sit idle in the consumer group" $name $svc.autoscaling.maxReplicas $.Values.kafka.partitions) -}}
{{- end -}}
{{- if gt (int $svc.autoscaling.minReplicas) (int $svc.autoscaling.maxReplicas) -}}
{{- fail (printf "services.%s.autoscaling.minReplicas (%v) is more than its maxReplicas (%v)" $name $svc.autoscaling.minReplicas $svc.autoscaling.maxReplicas) -}}
{{- end -}}
{{- else if gt (int $svc.replicas) (int $.Values.kafka.partitions) -}}
{{- fail (printf "services.%s.replicas is %v, more than kafka.partitions (%v)" $name $svc.replicas $.Values.kafka.partitions) -}}
{{- end -}}
{{- end -}}
{{- end -}}
