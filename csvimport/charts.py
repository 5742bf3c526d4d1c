"""Charts for csvimport's pages: pygal SVG, inlined, that runs nothing and fetches nothing.

The migration report and the assessment page are single files passed around by mail: their
charts are pygal SVG inlined in the page, stripped of pygal's script, links and tooltip data.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any

import pygal
from markupsafe import Markup
from pygal.style import Style

# pygal appends a finder to sys.meta_path that has only the legacy find_module(): from then
# on every failed import in the process (the stdlib probes some on purpose) raises
# ImportWarning, an error under `-W error`. It serves pygal_maps_* plugins, which csvimport
# does not use (Kozea/pygal#532 replaces it with find_spec and is not released).
sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, pygal.PluginImportFixer)]

FONTS = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'


def chart_config(colours: Sequence[str], **settings: Any) -> Any:
    """pygal settings for a chart that runs nothing and fetches nothing."""
    style = Style(
        background="transparent",
        plot_background="transparent",
        font_family=FONTS,
        colors=tuple(colours),
        legend_font_size=18,
        label_font_size=15,
        major_label_font_size=15,
    )
    options: dict[str, Any] = {
        "js": [],  # the default is a tooltip script from a CDN
        "disable_xml_declaration": True,
        "style": style,
        "legend_at_bottom": True,
        "truncate_legend": -1,
        "truncate_label": 30,
        "width": 640,
        "height": 460,
    }
    return pygal.Config(**{**options, **settings})


def inline_svg(chart: Any, chart_id: str, label: str) -> Markup:
    """Render ``chart`` as SVG to inline in the page, without what pygal adds that would
    run or fetch something."""
    chart.uuid = chart_id  # a stable element id instead of a random one per render

    def offline(root: Any) -> Any:
        for parent in list(root.iter()):
            for child in list(parent):
                # Comments (pygal's links to its site) and the <script> that pygal adds even
                # with js=[]: it holds the chart's config, data labels included, as JSON.
                # And <desc>: four per bar, the data of tooltips drawn by pygal's script,
                # which the page does not run; they made up most of a 1,000-job chart.
                if not isinstance(child.tag, str) or _local_name(child.tag) in _DROPPED:
                    parent.remove(child)
                elif _local_name(child.tag) == "title" and parent is root:
                    child.text = label
        for element in root.iter():
            for name in list(element.attrib):
                if _local_name(name) == "href" and not element.attrib[name].startswith("#"):
                    del element.attrib[name]
        check_offline(root)
        root.set("role", "img")
        root.set("aria-label", label)
        return root

    chart.xml_filters.append(offline)
    return Markup(chart.render(is_unicode=True))


_DROPPED = frozenset({"script", "desc"})


def check_offline(root: Any) -> None:
    """Fail on a reference that would leave the page, should a pygal release add one.

    Attributes and stylesheets are pygal's own; data reaches the SVG only as text, which
    the serializer escapes and which may read as a URL without being one.
    """
    for element in root.iter():
        found = [
            value
            for name, value in element.attrib.items()
            # xml.etree keeps the namespace declaration as an attribute: a name, not a link.
            if not name.startswith("xmlns") and re.search(r"://|url\((?!#)", value)
        ]
        if _local_name(element.tag) == "style":
            found += re.findall(r"url\((?!#)[^)]*\)|@import[^;]*", element.text or "")
        if found:
            raise AssertionError(f"pygal's SVG refers outside the page: {found}")


def _local_name(tag: str) -> str:
    return tag.rpartition("}")[2]
