{{/*
Seconds after which a tool's last success is stale: staleAfterIntervals
times (intervalSeconds + the loop's jitter, a tenth of the interval unless
loop.jitterSeconds is set). (dict "ctx" $ "values" .Values.scanImages)
*/}}
{{- define "nodeguard.staleAfterSeconds" -}}
{{- $interval := int .values.intervalSeconds }}
{{- $jitter := div $interval 10 }}
{{- if not (kindIs "invalid" .ctx.Values.loop.jitterSeconds) }}
{{- $jitter = int .ctx.Values.loop.jitterSeconds }}
{{- end }}
{{- mul (int .ctx.Values.prometheusRule.staleAfterIntervals) (add $interval $jitter) }}
{{- end }}
