"""Server-rendered pages (Jinja2, zh-CN, no build step, no CDN) on the same app as the API: the
holder's wallet (/wallet), the counter's check page (/counter) and the issuer console (/console).
Pages call the same services as the API, so the same rules and audit apply."""
