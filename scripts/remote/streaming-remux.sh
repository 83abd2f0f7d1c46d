#!/usr/bin/env bash
# bbb-streaming-remux RECORDINGS_DIR FILE.flv: turns one finished stream recording into FILE.mp4 beside it (the same
# audio and video, no re-encoding, the index at the front so a player can start before the whole file is there) and
# removes the FLV once that worked. An empty FLV (a publisher refused before it sent anything) is just removed.
# Installed on the streaming host as /usr/local/sbin/bbb-streaming-remux by the streaming step; nginx-rtmp runs it as
# nginx's worker user when it closes a recording (components/streaming-config.ts rtmpConf: exec_record_done), with
# stdin, stdout and stderr on /dev/null and no shell, so it reports to syslog. Not a remote step: it stands alone.
# It works only on regular *.flv files directly inside RECORDINGS_DIR.
set -euo pipefail
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() {
  logger -t bbb-streaming-remux -- "$*" 2>/dev/null || true
  echo "bbb-streaming-remux: $*" >&2
}

dir=${1:?usage: bbb-streaming-remux RECORDINGS_DIR FILE.flv}
given=${2:?usage: bbb-streaming-remux RECORDINGS_DIR FILE.flv}
dir=$(realpath -e -- "$dir") || { say "no recordings directory $1"; exit 1; }
flv=$(realpath -e -- "$given" 2>/dev/null) || { say "no such recording"; exit 1; }
if [ "$(dirname -- "$flv")" != "$dir" ] || [[ $flv != *.flv ]] || [ ! -f "$flv" ] || [ -L "$given" ]; then
  say "refusing a file that is not a regular .flv directly in $dir"
  exit 1
fi

# What the log says of a recording: the time it started (record_unique's suffix), never the stream's name, which is
# its viewer URL's secret part (privacy: strict keeps it out of every log).
started=${flv##*-}
started=${started%.flv}
if [ ! -s "$flv" ]; then
  rm -f -- "$flv"
  say "removed the empty recording started at $started"
  exit 0
fi

mp4=${flv%.flv}.mp4
part=$(mktemp "$dir/.remux.XXXXXX")
trap 'rm -f -- "$part"' EXIT
# ffmpeg's own messages name the file: not shown (run it by hand on a kept FLV to see why).
if ! ffmpeg -nostdin -hide_banner -loglevel error -y -i "$flv" -c copy -movflags +faststart -f mp4 "$part" 2>/dev/null; then
  say "ffmpeg could not remux the recording started at $started; its FLV is kept"
  exit 1
fi
chmod 0644 "$part"
mv -f -- "$part" "$mp4"
rm -f -- "$flv"
say "remuxed the recording started at $started to MP4"
