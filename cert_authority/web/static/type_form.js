// The form view of a licence type: shortly after each change, the server merges the form into the
// definition and answers with its YAML and the preview picture (or what is wrong).
(function () {
  "use strict";
  var form = document.getElementById("type-form-editor");
  var rows = document.getElementById("field-rows");
  var rowTemplate = document.getElementById("row-template");
  var picture = document.getElementById("preview");
  var yamlText = document.getElementById("yaml");
  var toYaml = document.getElementById("to-yaml-spec");
  var error = document.getElementById("form-error");
  var state = document.getElementById("preview-state");
  var timer = null;
  var asked = 0;

  function renumber() {
    // A checkbox's value is its row's position: the server pairs it with the row's other inputs.
    Array.prototype.forEach.call(rows.querySelectorAll(".field-row"), function (row, i) {
      row.querySelector("input[name=required]").value = String(i);
      row.querySelector(".row-number").textContent = String(i + 1);
    });
  }

  function preview() {
    var ask = ++asked;
    state.textContent = "（正在生成…）";
    fetch("/console/types/form/preview", { method: "POST", body: new FormData(form), credentials: "same-origin" })
      .then(function (response) {
        return response.json().then(function (answer) {
          if (ask !== asked) { return; } // a newer edit is on its way
          if (!response.ok) {
            error.textContent = answer.message || "无法生成预览";
            error.hidden = false;
            state.textContent = "（定义有误）";
            return;
          }
          picture.src = "data:image/png;base64," + answer.png;
          picture.hidden = false;
          yamlText.value = answer.yaml;
          toYaml.value = answer.yaml;
          error.hidden = true;
          state.textContent = "（样例数据）";
        });
      })
      .catch(function () { state.textContent = "（网络异常，预览未更新）"; });
  }

  function soon() { clearTimeout(timer); timer = setTimeout(preview, 600); }

  document.getElementById("add-row").addEventListener("click", function () {
    var last = rows.querySelector(".field-row:last-of-type");
    rows.appendChild(rowTemplate.content.cloneNode(true));
    var added = rows.querySelector(".field-row:last-of-type");
    if (last) { // the new field goes one line under the last one, as wide
      ["x", "w"].forEach(function (part) {
        added.querySelector("[name=" + part + "]").value = last.querySelector("[name=" + part + "]").value;
      });
      var y = parseFloat(last.querySelector("[name=y]").value || "0");
      var h = parseFloat(last.querySelector("[name=h]").value || "8");
      added.querySelector("[name=y]").value = String(y + h + 1);
      added.querySelector("[name=h]").value = "8";
    }
    renumber();
    added.querySelector("[name=label]").focus();
  });
  rows.addEventListener("click", function (event) {
    if (event.target.classList.contains("remove-row")) {
      event.target.closest(".field-row").remove();
      renumber();
      soon();
    }
  });
  // Choosing a background file means using it.
  document.getElementById("background_image").addEventListener("change", function (event) {
    if (event.target.files.length) { document.getElementById("background").value = "upload"; }
  });
  form.addEventListener("input", soon);
  form.addEventListener("change", soon);
  renumber();
  preview();
})();
