#!/bin/sh
# /usr/bin/pos-agent: runs the agent installed in ../lib/pos-agent with the distribution's Node.
# Found relative to this script, so an installation unpacked elsewhere (dpkg-deb -x) runs too.
# POS_AGENT_NODE names another node binary.
set -e
here=$(dirname "$(readlink -f "$0")")
exec "${POS_AGENT_NODE:-node}" "$here/../lib/pos-agent/dist/agent/cli.js" "$@"
