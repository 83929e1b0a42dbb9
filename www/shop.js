// The demo shop's language switcher. A shop's own code: it only sets <html lang>, and the
// widget follows. `?lang=lv` picks a language on load (used for screenshots).
const select = document.getElementById("lang");
const wanted = new URLSearchParams(location.search).get("lang");
if (wanted) document.documentElement.lang = wanted;
if (select) {
  select.value = document.documentElement.lang;
  select.addEventListener("change", () => {
    document.documentElement.lang = select.value;
  });
}
