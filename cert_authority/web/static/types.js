// Live preview while a department edits a licence type: re-render shortly after typing stops.
(function () {
  "use strict";
  var form = document.getElementById("type-form");
  var spec = document.getElementById("spec");
  var images = document.getElementById("images");
  var picture = document.getElementById("preview");
  var error = document.getElementById("preview-error");
  var state = document.getElementById("preview-state");
  var timer = null;
  var asked = 0;

  function preview() {
    var ask = ++asked;
    var body = new FormData();
    body.append("spec", spec.value);
    Array.prototype.forEach.call(images.files, function (file) { body.append("images", file); });
    state.textContent = "（正在生成…）";
    fetch("/console/types/preview", { method: "POST", body: body, credentials: "same-origin" })
      .then(function (response) {
        if (ask !== asked) { return; } // a newer edit is on its way
        if (response.ok) {
          return response.blob().then(function (blob) {
            if (picture.src.indexOf("blob:") === 0) { URL.revokeObjectURL(picture.src); }
            picture.src = URL.createObjectURL(blob);
            picture.hidden = false;
            error.hidden = true;
            state.textContent = "（样例数据）";
          });
        }
        return response.json().then(function (answer) {
          error.textContent = answer.message || "无法生成预览";
          error.hidden = false;
          state.textContent = "（定义有误）";
        });
      })
      .catch(function () { state.textContent = "（网络异常，预览未更新）"; });
  }

  function soon() { clearTimeout(timer); timer = setTimeout(preview, 700); }
  spec.addEventListener("input", soon);
  images.addEventListener("change", soon);
  if (picture.hidden && error.hidden) { preview(); }
})();
