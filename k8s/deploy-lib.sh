#!/usr/bin/env bash
# Shared by kind-up.sh and minikube-up.sh (sourced, not run): build the image, deploy an overlay
# and wait until the system answers. Every step can run again on a cluster that already has it.

# The repository root: the Docker build context and where the overlays live.
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly repo_root
# The tag the overlays deploy (k8s/components/local-image).
readonly image=ticketing:dev
readonly namespace=ticketing
# The Deployments of the ticketing image: the services and, where the overlay has it, the card
# gateway's simulator (components/pg-sim).
readonly workloads='app.kubernetes.io/component in (service,gateway)'

say() { printf '%s: %s\n' "${0##*/}" "$*"; }
die() { printf '%s: %s\n' "${0##*/}" "$*" >&2; exit 1; }

# need COMMAND HINT: stops with HINT when COMMAND is not installed.
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is not installed: $2"; }

build_image() {
  say "building $image from $repo_root (the first build compiles every crate: several minutes)"
  docker build --tag "$image" "$repo_root"
}

# deploy CONTEXT OVERLAY: applies the overlay and waits for every workload.
deploy() {
  local context=$1 overlay=$2
  local kc=(kubectl --context "$context")

  # A Job's pod template cannot change, and a finished Job would not run again: replace it, so
  # migrations and stream definitions follow the image just loaded.
  "${kc[@]}" delete job ticketing-setup --namespace "$namespace" --ignore-not-found --wait=true

  # Deployments that exist already keep their pod template (same tag), so they are restarted
  # below to pick up the image just loaded.
  local existed
  existed=$("${kc[@]}" get deployments --namespace "$namespace" \
    --selector "$workloads" --output name 2>/dev/null || true)

  say "applying $overlay"
  # The ingress controller's admission webhook can refuse connections for a few seconds after
  # its pod turns ready; a bounded retry rides that out.
  local attempt
  for attempt in 1 2 3 4 5 6; do
    if "${kc[@]}" apply --kustomize "$repo_root/$overlay"; then
      break
    fi
    [ "$attempt" -lt 6 ] || die "kubectl apply kept failing; see the errors above"
    say "apply failed (attempt $attempt of 6); retrying in 10 s"
    sleep 10
  done

  if [ -n "$existed" ]; then
    say "restarting the services onto the new image"
    # shellcheck disable=SC2086 # one resource name per word
    "${kc[@]}" rollout restart --namespace "$namespace" $existed
  fi

  say "waiting for Postgres, NATS and Redis"
  "${kc[@]}" rollout status --namespace "$namespace" statefulset/postgres --timeout=300s
  "${kc[@]}" rollout status --namespace "$namespace" statefulset/nats --timeout=300s
  "${kc[@]}" rollout status --namespace "$namespace" deployment/redis --timeout=300s

  say "waiting for the setup Job (ticketing migrate, ticketing nats apply)"
  if ! "${kc[@]}" wait --namespace "$namespace" --for=condition=complete job/ticketing-setup --timeout=300s; then
    "${kc[@]}" logs --namespace "$namespace" job/ticketing-setup --all-containers --tail=50 >&2 || true
    die "the setup Job did not complete; its logs are above"
  fi

  say "waiting for the services"
  local deployment
  for deployment in $("${kc[@]}" get deployments --namespace "$namespace" \
    --selector "$workloads" --output name); do
    "${kc[@]}" rollout status --namespace "$namespace" "$deployment" --timeout=300s
  done
}

# wait_for_url URL: polls URL/readyz (through the ingress) until it answers, for up to 2 minutes.
wait_for_url() {
  local url=$1 _
  for _ in $(seq 1 60); do
    if curl --silent --fail --max-time 2 "$url/readyz" >/dev/null; then
      return 0
    fi
    sleep 2
  done
  die "$url/readyz did not answer within 2 minutes: is the ingress controller running?"
}

# set_public_url CONTEXT URL: the card gateway simulator's checkout links (PG_SIM_PUBLIC_URL) and
# the buyer's way back from them (TICKETING_PAYMENT_RETURN_URL) name the URL the browser reaches
# the cluster at, which components/pg-sim gives as http://localhost (kind's). Where the cluster's
# URL differs (minikube's node, kind on another HTTP_PORT) both are set on the Deployments; each
# apply puts the component's back, so each run sets them again.
set_public_url() {
  local context=$1 url=$2
  local kc=(kubectl --context "$context" --namespace "$namespace")
  [ "$url" != http://localhost ] || return 0
  "${kc[@]}" get deployment pg-sim >/dev/null 2>&1 || return 0
  say "pointing the card checkout pages and the way back from them at $url"
  "${kc[@]}" set env deployment/pg-sim PG_SIM_PUBLIC_URL="$url"
  "${kc[@]}" set env deployment/ticketing-payment TICKETING_PAYMENT_RETURN_URL="$url/"
  "${kc[@]}" rollout status deployment/pg-sim --timeout=300s
  "${kc[@]}" rollout status deployment/ticketing-payment --timeout=300s
}

# print_next_steps CONTEXT URL
print_next_steps() {
  local context=$1 url=$2
  cat <<TEXT

ticketing is up at $url
  curl $url/concerts

A demo concert, and a token signed with the development key pair (the pods hold its public half
alone), from this checkout:
  kubectl --context $context -n $namespace exec deploy/ticketing-concert -- ticketing seed
  TICKETING_ENV=dev TICKETING_JWT_PUBLIC_KEY=shared/platform/dev-keys/jwt-ed25519.pub.pem \\
    TICKETING_JWT_PRIVATE_KEY=shared/platform/dev-keys/jwt-ed25519.pem \\
    cargo run -q --bin ticketing -- token --user \$(uuidgen | tr A-Z a-z)

Card payments go to the gateway's simulator (pg-sim), its checkout pages under $url/checkout/.
To make it fail (declineAll, dropWebhooks, failNextApiCalls, …), reach its API from here:
  kubectl --context $context -n $namespace port-forward svc/pg-sim 8090 &
  curl -X PUT -H 'Authorization: Bearer sk_test_ticketing' -H 'Content-Type: application/json' \\
    -d '{"declineAll": true}' http://127.0.0.1:8090/sim/settings

Logs and dead letters:
  kubectl --context $context -n $namespace logs deploy/ticketing-reservation
  kubectl --context $context -n $namespace exec deploy/ticketing-concert -- ticketing dlq list
TEXT
}
