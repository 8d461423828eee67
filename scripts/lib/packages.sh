# Sourced by Waybill's scripts (scripts/test, scripts/demo, scripts/check-docker, ...): installs missing Debian
# packages, the one way every script does it.
#
#   install_missing_packages NAME [--no-recommends] [--require-debian] PACKAGE...
#
# NAME prefixes every line (`scripts/test: installing ...`). On a system without dpkg it notes what to install and
# returns, unless --require-debian, which stops the script. Not root: it names the missing packages and the apt-get
# line, prints MISSING_PACKAGES_HINT if set, and exits 1. As root: apt-get update and install, with a policy-rc.d
# that keeps package scripts from starting services (Debian's rabbitmq-server would start a system broker on 5672,
# prometheus a server on 9090; Waybill's scripts run their own private processes); exits with apt-get's status if
# that fails.
install_missing_packages() {
    local name="$1" recommends=true require_debian=false
    shift
    while [ $# -gt 0 ]; do
        case "$1" in
            --no-recommends) recommends=false; shift ;;
            --require-debian) require_debian=true; shift ;;
            *) break ;;
        esac
    done
    if ! command -v dpkg-query >/dev/null 2>&1; then
        if [ "$require_debian" = true ]; then
            echo "$name: not a Debian-like system: install $* and retry" >&2
            exit 1
        fi
        echo "$name: not a Debian-like system: make sure these are installed: $*"
        return 0
    fi
    local missing=() package
    for package in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$package")
        fi
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "$name: missing system packages: ${missing[*]}" >&2
        echo "install them with: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
        [ -n "${MISSING_PACKAGES_HINT:-}" ] && echo "$MISSING_PACKAGES_HINT" >&2
        exit 1
    fi
    echo "$name: installing ${missing[*]} (apt-get update, then apt-get install)"
    local policy=/usr/sbin/policy-rc.d created_policy=false
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        created_policy=true
    fi
    local flags=(-y -q) status=0
    [ "$recommends" = false ] && flags+=(--no-install-recommends)
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install "${flags[@]}" "${missing[@]}" || status=$?
    if [ "$created_policy" = true ]; then rm -f "$policy"; fi
    if [ "$status" -ne 0 ]; then
        echo "$name: apt-get install ${missing[*]} failed" >&2
        exit "$status"
    fi
}
