#!/usr/bin/env bash
# The secrets a stack needs in the GitHub workflows, read from environment variables that the workflow fills
# from the repository's (or the GitHub environment's) secrets of the same names. Prints no value, ever.
#   check [--require]  whether they are all there: writes configured=true|false to $GITHUB_OUTPUT. None at all (a
#                      pull request from a fork or Dependabot, a repository without a cloud): a notice. Some but not
#                      all: a warning naming the missing ones, or with --require (deploys) an error, exit 1.
#   set <stack>        logs in to the Pulumi backend and sets the program's secret keys in the runner's copy of
#                      Pulumi.<stack>.yaml (never committed), each read by `pulumi config set --secret` from its
#                      standard input, never from a command line.
# STACK_SECRETS_FROM_ESC=true: the stacks import a Pulumi ESC environment holding the keys and the cloud
# credentials (README, CI/CD); then only PULUMI_ACCESS_TOKEN is needed, and a secret that is given anyway wins.
set -euo pipefail

# The program's secret keys (components/config/schema.ts, secret values): Pulumi config key, the secret it comes from,
# and when the stack needs it. test/workflows.test.ts checks that every required secret key of CONFIG_SCHEMA is
# here and reaches `pulumi config set` in every preview and deploy job.
STACK_SECRETS=(
  "sshPrivateKey SSH_PRIVATE_KEY required"
  "dialIn.gateway.password DIAL_IN_GATEWAY_PASSWORD with-dialIn"
)

# Every secret the workflows may pass in; any one of them given means someone set this repository up.
KNOWN=(PULUMI_ACCESS_TOKEN PULUMI_BACKEND_URL PULUMI_CONFIG_PASSPHRASE OS_AUTH_URL OS_APPLICATION_CREDENTIAL_ID
  OS_APPLICATION_CREDENTIAL_SECRET OS_USERNAME OS_PASSWORD CLOUDFLARE_API_TOKEN)
for entry in "${STACK_SECRETS[@]}"; do KNOWN+=("$(cut -d' ' -f2 <<<"$entry")"); done

given() { [ -n "${!1:-}" ]; }
from_esc() { [ "${STACK_SECRETS_FROM_ESC:-}" = true ]; }

check() {
  local require=false missing=() any=false
  [ "${1:-}" = --require ] && require=true
  for var in "${KNOWN[@]}"; do given "$var" && any=true; done

  if from_esc; then
    given PULUMI_ACCESS_TOKEN || missing+=("PULUMI_ACCESS_TOKEN (Pulumi ESC needs Pulumi Cloud)")
  else
    if ! given PULUMI_ACCESS_TOKEN; then
      if given PULUMI_BACKEND_URL; then
        given PULUMI_CONFIG_PASSPHRASE || missing+=("PULUMI_CONFIG_PASSPHRASE (with PULUMI_BACKEND_URL)")
      else
        missing+=("PULUMI_ACCESS_TOKEN (or PULUMI_BACKEND_URL and PULUMI_CONFIG_PASSPHRASE)")
      fi
    fi
    given OS_AUTH_URL || missing+=(OS_AUTH_URL)
    { given OS_APPLICATION_CREDENTIAL_ID && given OS_APPLICATION_CREDENTIAL_SECRET; } ||
      { given OS_USERNAME && given OS_PASSWORD; } ||
      missing+=("OS_APPLICATION_CREDENTIAL_ID and OS_APPLICATION_CREDENTIAL_SECRET (or OS_USERNAME and OS_PASSWORD)")
    for entry in "${STACK_SECRETS[@]}"; do
      read -r key var when <<<"$entry"
      [ "$when" = required ] && ! given "$var" && missing+=("$var (config key $key)")
    done
  fi

  local configured=false
  if [ "${#missing[@]}" -eq 0 ]; then
    configured=true
    if ! from_esc && ! given CLOUDFLARE_API_TOKEN; then
      echo "::warning::CLOUDFLARE_API_TOKEN is not set: a stack with dns.provider cloudflare fails (README, CI/CD)"
    fi
  elif [ "$any" = false ]; then
    echo "::notice::No cloud credentials or stack secrets among this run's secrets (a pull request from a fork or Dependabot gets none; a repository not set up has none): the Pulumi steps are skipped. To set them up, see README, CI/CD."
  else
    local list
    list=$(printf '%s; ' "${missing[@]}")
    if [ "$require" = true ]; then
      echo "::error::Missing secrets: ${list%; } (repository or GitHub environment secrets, README, CI/CD)"
      echo "configured=false" >> "${GITHUB_OUTPUT:-/dev/null}"
      exit 1
    fi
    echo "::warning::Missing secrets: ${list%; } (README, CI/CD): the Pulumi steps are skipped."
  fi
  echo "configured=$configured" >> "${GITHUB_OUTPUT:-/dev/null}"
}

set_secrets() {
  local stack=$1
  pulumi login --non-interactive
  if ! pulumi stack select --non-interactive "$stack"; then
    echo "::error::Could not select the stack $stack in the Pulumi backend. If it does not exist yet, create it once: pulumi stack init $stack (README, First deploy)."
    exit 1
  fi
  for entry in "${STACK_SECRETS[@]}"; do
    read -r key var when <<<"$entry"
    # The stack's own secret (SSH_PRIVATE_KEY_PROD for prod) wins over the shared one.
    local own
    own="${var}_$(tr 'a-z-' 'A-Z_' <<<"$stack")"
    given "$own" && var=$own
    local path=()
    [[ $key == *.* ]] && path=(--path)
    if [ "$when" = with-dialIn ] && ! pulumi config get --non-interactive --stack "$stack" dialIn >/dev/null 2>&1; then
      continue # the stack has no dial-in
    fi
    if ! given "$var"; then
      from_esc && continue
      echo "::error::The stack $stack needs $key: add the secret $var (README, CI/CD)."
      exit 1
    fi
    printf '%s' "${!var}" | pulumi config set --non-interactive --secret --stack "$stack" "${path[@]}" "$key"
    echo "$key: set from the secret $var"
  done
}

case ${1:-} in
  check) check "${2:-}" ;;
  set)
    [ -n "${2:-}" ] || { echo "usage: $0 set <stack>" >&2; exit 2; }
    set_secrets "$2"
    ;;
  *)
    echo "usage: $0 check [--require] | set <stack>" >&2
    exit 2
    ;;
esac
