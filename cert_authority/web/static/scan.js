// The counter's scan page: keep the scan field focused for a scanner gun (it types, then Enter
// submits), and scan with the camera where the browser has a barcode detector.
(function () {
  "use strict";
  var field = document.getElementById("code");
  var form = document.getElementById("scan-form");
  var button = document.getElementById("camera-button");
  var note = document.getElementById("camera-note");
  var video = document.getElementById("camera");

  // After a result, the next holder steps up: focus returns to the field, ready for the gun.
  document.addEventListener("keydown", function (event) {
    var tag = document.activeElement && document.activeElement.tagName;
    if (tag !== "INPUT" && tag !== "TEXTAREA" && tag !== "SELECT" && event.key.length === 1) { field.focus(); }
  });

  if (!("BarcodeDetector" in window) || !navigator.mediaDevices) { note.hidden = false; return; }
  button.hidden = false;
  button.addEventListener("click", function () {
    var detector = new window.BarcodeDetector({ formats: ["qr_code"] });
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } }).then(function (stream) {
      video.srcObject = stream;
      video.hidden = false;
      video.play();
      var look = function () {
        detector.detect(video).then(function (codes) {
          if (codes.length) {
            stream.getTracks().forEach(function (track) { track.stop(); });
            field.value = codes[0].rawValue;
            form.submit();
          } else { requestAnimationFrame(look); }
        }).catch(function () { requestAnimationFrame(look); });
      };
      look();
    }).catch(function () { note.textContent = "无法打开摄像头：请允许使用摄像头，或用扫码枪、上传照片。"; note.hidden = false; });
  });
})();
