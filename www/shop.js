// The demo shop's language switcher: the shop's own code, not the widget's. It picks the
// page language before the widget starts (`?lang=lv`), and switching reloads the page, as
// most shops do; the widget chooses each form's language when it renders the choices.
const select = document.getElementById("lang");
const wanted = new URLSearchParams(location.search).get("lang");
if (wanted && /^[a-z]{2}$/.test(wanted)) document.documentElement.lang = wanted;
if (select) {
  select.value = document.documentElement.lang;
  select.addEventListener("change", () => {
    const url = new URL(location.href);
    url.searchParams.set("lang", select.value);
    location.assign(url);
  });
}
