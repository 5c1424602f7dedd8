// "返回上一页" without an inline script (the pages' Content-Security-Policy allows none).
document.querySelectorAll("[data-back]").forEach(function (link) {
    link.addEventListener("click", function (event) {
        if (history.length > 1) {
            event.preventDefault();
            history.back();
        }
    });
});
