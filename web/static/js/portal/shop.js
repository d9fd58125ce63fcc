// The portal's shop page: a map beside the latitude and longitude fields (Leaflet, served from our
// own origin). The fields stay the primary way, with the keyboard; the map shows what they say, and
// a click or a tap on it fills them. Tiles only from the tile server the deployment configures
// (ENTRAIDE_MAP_TILES_URL); without one the map is blank but still places the shop.
import { control, divIcon, map as leafletMap, marker, tileLayer } from "/static/leaflet/leaflet-src.esm.js";

const box = document.querySelector(".shop-map-box");
const element = document.getElementById("shop-map");
const lat = document.getElementById("shop-lat");
const lng = document.getElementById("shop-lng");
const SOMEWHERE = [45.5, -73.55]; // the program's cities are around Montréal: the view before a place is given

function degrees(field, most) {
  const value = Number(field.value.trim().replace(",", ".").replace("\u2212", "-"));
  return field.value.trim() !== "" && Number.isFinite(value) && Math.abs(value) <= most ? value : null;
}

if (box && element && lat && lng) {
  box.hidden = false;
  const map = leafletMap(element, { zoomControl: false, attributionControl: false });
  control.zoom({ zoomInTitle: element.dataset.zoomIn, zoomOutTitle: element.dataset.zoomOut }).addTo(map);
  if (element.dataset.tiles) {
    tileLayer(element.dataset.tiles, { maxZoom: 19 }).addTo(map);
  }
  const icon = divIcon({ className: "find-marker", iconSize: [22, 22] });
  let pin = null;
  const place = (where, zoom) => {
    if (pin) {
      pin.setLatLng(where);
    } else {
      pin = marker(where, { icon, title: element.dataset.marker, keyboard: false }).addTo(map);
    }
    map.setView(where, zoom ?? map.getZoom());
    element.dataset.place = `${where[0].toFixed(6)},${where[1].toFixed(6)}`;
  };
  const fromFields = () => {
    const where = [degrees(lat, 90), degrees(lng, 180)];
    if (where[0] !== null && where[1] !== null) {
      place(where, Math.max(map.getZoom() || 0, 15));
    }
  };
  map.setView(SOMEWHERE, 10);
  fromFields();
  lat.addEventListener("change", fromFields);
  lng.addEventListener("change", fromFields);
  map.on("click", (event) => {
    lat.value = event.latlng.lat.toFixed(6);
    lng.value = event.latlng.lng.toFixed(6);
    place([event.latlng.lat, event.latlng.lng]);
  });
  element.dataset.ready = "1";
}
