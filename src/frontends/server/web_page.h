// The chat web page `dsv4 serve` answers at GET /: one self-contained HTML document (CSS and
// JS inline; no build step, no CDN, works offline) that talks to /v1/chat/completions with
// streaming: reasoning shown in a collapsible block, the three reasoning modes, a system
// prompt, max tokens, a stop button (aborting the fetch cancels the job on the server) and
// token / speed stats from the usage chunk. body[data-state] is idle / streaming / done /
// stopped / error (the browser test waits on it).
#pragma once

namespace dsv4::server {

const char* chat_page_html();

}  // namespace dsv4::server
