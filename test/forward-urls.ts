// Forward URLs both checks must refuse, the configuration's (components/streaming-config.ts FORWARD_URL, through
// components/config/values.ts) and the streaming step's (scripts/remote/streaming-setup.sh): one rule, written twice.
export const REFUSED_FORWARD_URLS: [string, string][] = [
    ["no stream key", "rtmp://live.example.net/app/"],
    ["no application", "rtmp://live.example.net/KEY-5e1"],
    ["a host starting with '-'", "rtmp://-live.example.net/app/KEY-5e1"],
    ["port 0", "rtmp://live.example.net:0/app/KEY-5e1"],
    ["a '$' (nginx's variables)", "rtmp://live.example.net/app/KEY$5e1"],
    ["a '#'", "rtmp://live.example.net/app/KEY#5e1"],
    ["a ';'", "rtmp://live.example.net/app/KEY;5e1"],
    ["a quote", "rtmp://live.example.net/app/KEY'5e1"],
    ["a tab", "rtmp://live.example.net/app/KEY\t5e1"],
    ["a control character", "rtmp://live.example.net/app/KEY\x015e1"],
    ["DEL", "rtmp://live.example.net/app/KEY\x7f5e1"],
    ["a C1 line break (U+0085)", "rtmp://live.example.net/app/KEY\u00855e1"],
    ["over 1024 characters", `rtmp://live.example.net/app/KEY-${"5".repeat(1000)}`],
    ["rtmps://", "rtmps://live.example.net/app/KEY-5e1"],
];
