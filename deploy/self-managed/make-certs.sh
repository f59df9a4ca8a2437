#!/usr/bin/env bash
# Without cert-manager: make a CA and the webhook's serving certificate with openssl,
# store them as the Secret the Deployment mounts, and put the CA into the
# MutatingWebhookConfiguration's caBundle. Run after `kubectl apply -f deploy/self-managed/`
# (re-run to rotate, before the 825 days run out; the webhook re-reads the Secret on restart).
#   deploy/self-managed/make-certs.sh [--dry-run]    # --dry-run: make the files, print the kubectl steps
set -euo pipefail
namespace=kube-system
service=podid-pod-identity-webhook
days=825
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
command -v openssl >/dev/null || { echo "make-certs: openssl is required" >&2; exit 1; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days "$days" \
  -subj "/CN=$service-ca" -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -subj "/CN=$service.$namespace.svc" -keyout "$dir/tls.key" -out "$dir/tls.csr" 2>/dev/null
printf 'subjectAltName=DNS:%s.%s.svc,DNS:%s.%s.svc.cluster.local\nextendedKeyUsage=serverAuth\n' \
  "$service" "$namespace" "$service" "$namespace" >"$dir/ext.cnf"
openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
  -days "$days" -extfile "$dir/ext.cnf" -out "$dir/tls.crt" 2>/dev/null
ca_bundle=$(base64 <"$dir/ca.crt" | tr -d '\n')

secret=(kubectl -n "$namespace" create secret tls "$service-cert" --cert="$dir/tls.crt" --key="$dir/tls.key")
patch=(kubectl patch mutatingwebhookconfiguration "$service" --type=json
  -p "[{\"op\":\"replace\",\"path\":\"/webhooks/0/clientConfig/caBundle\",\"value\":\"$ca_bundle\"}]")
if [[ ${1:-} == --dry-run ]]; then
  openssl verify -CAfile "$dir/ca.crt" "$dir/tls.crt"
  echo "${secret[*]} --dry-run=client -o yaml | kubectl apply -f -"
  echo "${patch[*]}"
  exit 0
fi
"${secret[@]}" --dry-run=client -o yaml | kubectl apply -f -
"${patch[@]}"
kubectl -n "$namespace" rollout restart deployment "$service"
echo "make-certs: serving certificate stored in $namespace/$service-cert, caBundle set"
