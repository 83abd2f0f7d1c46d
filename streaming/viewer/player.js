// The viewer page's player (streaming/viewer/index.html). The stream's name is the page's path, /watch/<name>; its
// HLS playlist is /hls/<name>.m3u8 on the same site. hls.js (/hls.light.min.js) plays it where the browser has
// MediaSource (Firefox, Chrome, Edge), the browser's own HLS elsewhere (Safari, iOS). Before the stream starts and
// after it ends there is no playlist: the page says so and asks again, less and less often.
"use strict";
(function () {
    var FIRST_RETRY_MS = 5000;
    var LAST_RETRY_MS = 30000;
    var video = document.getElementById("video");
    var status = document.getElementById("status");
    var match = /^\/watch\/([0-9a-f]{32})$/.exec(window.location.pathname);
    var retryMs = FIRST_RETRY_MS;
    var hls = null;

    function say(text) {
        status.textContent = text;
        status.hidden = text === "";
    }

    function stop() {
        if (hls) {
            hls.destroy();
            hls = null;
        }
        video.removeAttribute("src");
        video.load();
    }

    function retry(text) {
        stop();
        say(text + " This page tries again in " + Math.round(retryMs / 1000) + " seconds.");
        setTimeout(start, retryMs);
        retryMs = Math.min(retryMs * 2, LAST_RETRY_MS);
    }

    function play() {
        var playing = video.play();
        if (playing) playing.catch(function () { say("Press play to watch."); });
    }

    function withHlsJs(source) {
        var recovered = false;
        hls = new window.Hls();
        hls.on(window.Hls.Events.MANIFEST_PARSED, play);
        hls.on(window.Hls.Events.ERROR, function (event, data) {
            if (!data.fatal) return;
            if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR && !recovered) {
                recovered = true;
                hls.recoverMediaError();
                return;
            }
            retry("The stream has ended or was interrupted.");
        });
        hls.loadSource(source);
        hls.attachMedia(video);
    }

    function start() {
        var source = "/hls/" + match[1] + ".m3u8";
        fetch(source, { cache: "no-store" }).then(
            function (response) {
                if (!response.ok) {
                    retry("The stream has not started yet, or it has ended.");
                } else if (window.Hls && window.Hls.isSupported()) {
                    withHlsJs(source);
                } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
                    video.src = source;
                    play();
                } else {
                    say("This browser cannot play the stream.");
                }
            },
            function () {
                retry("The stream cannot be reached.");
            },
        );
    }

    if (!match) {
        say("There is no stream at this address: open the link you were given.");
        return;
    }
    video.addEventListener("playing", function () {
        retryMs = FIRST_RETRY_MS;
        say("");
    });
    video.addEventListener("ended", function () {
        retry("The stream has ended.");
    });
    video.addEventListener("error", function () {
        if (!hls && video.getAttribute("src")) retry("The stream was interrupted.");
    });
    start();
})();
