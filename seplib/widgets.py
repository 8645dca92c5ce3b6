"""Interactive controls: a slider panel that retrains psi, and precomputed frames for the web.

In a live notebook ``kef_panel`` retrains on a button press. Where no frontend runs (nbval, the
book build) it still shows its default figure, as an ordinary output. A rendered web page has no
kernel, so ``frames_slider`` bakes a few precomputed figures behind an HTML range input.
"""
import base64
import io

import ipywidgets as W
import matplotlib.pyplot as plt
import torch
from IPython.display import HTML, display

from ._guards import as_ends, check_positive
from .kef import Recipe, auto_eigenvalue, fit_kef
from .plots import kef_levels
from .sampling import DEFAULT_SCALES, MultiscaleGaussian


# Slider frames: at 130 dpi a 5.5-inch figure is 715 px wide, its 10-pt legend text 18 px high
FRAME_DPI = 130


def scales_up_to(largest):
    """The default scale ladder, stretched so that its largest scale is ``largest``."""
    largest = check_positive(largest, "largest", "a finite scale")
    return tuple(s * largest / DEFAULT_SCALES[-1] for s in DEFAULT_SCALES)


def _figure(kef, plot_kw, title):
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    kef_levels(kef, ax=ax, title=title, **plot_kw)
    fig.tight_layout()
    return fig


def _epochs_run(kef, default):
    """How many epochs psi trained for (fit_kef stops once the zero set settles)."""
    return len(getattr(kef, "loss_history_", [])) or default


def kef_panel(field, a, b, kef=None, eigenvalue="auto", largest_scale=4.0, epochs=5000,
              rhs="standard", device=None, seed=0, **plot_kw):
    """Sliders for the eigenvalue, the largest sampling scale and the most epochs, a choice of
    objective, a Train button, a progress bar and a live figure of psi's level sets.

    The default figure (of ``kef`` if given, else trained now with the default settings) is
    displayed first as a plain figure; the eigenvalue slider starts at its lambda (with
    ``eigenvalue="auto"``, 0.4 times the unstable rate of the saddle that fit_kef finds). It
    trains with ``Recipe.low_dim(scales)``, the scales stretched to the slider's largest, for
    the attractors ``a`` and ``b``. ``plot_kw`` goes to ``plots.kef_levels`` (field, lo, hi,
    attractors, true_separatrix, ...). Returns the panel.
    """
    check_positive(largest_scale, "largest_scale", "a finite scale")
    dim = len(as_ends(a, b, torch.float32)[0])
    plot_kw.setdefault("field", field)

    def train(eig, largest, n_epochs, objective, progress):
        return fit_kef(field, a, b, rhs=objective, eigenvalue=eig, epochs=n_epochs, device=device, seed=seed,
                       progress=progress, recipe=Recipe.low_dim(scales_up_to(largest)))

    if kef is None:
        kef = train(eigenvalue, largest_scale, epochs, rhs, progress=False)
    eigenvalue = getattr(kef, "eigenvalue", eigenvalue)  # the lambda psi was trained with
    if eigenvalue == "auto":  # a psi from elsewhere: start the slider where fit_kef would
        eigenvalue = auto_eigenvalue(field, MultiscaleGaussian(dim), seed, device or "cpu")
    fig = _figure(kef, plot_kw, f"{rhs}, $\\lambda$={eigenvalue:.2g}, scale {largest_scale:g}, {_epochs_run(kef, epochs)} epochs")
    display(fig)
    plt.close(fig)

    style = {"description_width": "110px"}
    eig = W.FloatLogSlider(value=eigenvalue, base=10, min=-1, max=1, step=0.1,
                           description="eigenvalue λ", style=style)
    largest = W.FloatLogSlider(value=largest_scale, base=10, min=-1, max=1.3, step=0.1,
                               description="largest scale", style=style)
    n_epochs = W.IntSlider(value=epochs, min=100, max=10000, step=100, description="max epochs", style=style)
    objective = W.ToggleButtons(options=["standard", "squashed"], value=rhs, description="objective",
                                style=style)
    button = W.Button(description="Train", button_style="primary", icon="play")
    out = W.Output()

    def on_click(_):
        button.disabled = True
        with out:
            out.clear_output(wait=True)
            k = train(eig.value, largest.value, n_epochs.value, objective.value, progress=True)
            f = _figure(k, plot_kw, f"{objective.value}, $\\lambda$={eig.value:.2g}, "
                                    f"scale {largest.value:.2g}, {len(k.loss_history_)} epochs")
            display(f)
            plt.close(f)
        button.disabled = False

    button.on_click(on_click)
    note = W.HTML("<b>Retrain psi</b>: set the sliders and press Train (needs a running kernel).")
    return W.VBox([note, eig, largest, n_epochs, objective, button, out])


def frames_slider(figures, labels, name="value", start=0):
    """An HTML range input over pre-rendered figures: explore a parameter with no kernel.

    ``figures`` are matplotlib figures (closed here), ``labels`` the parameter value of each;
    ``start`` is the index of the frame shown first (negative counts from the end), the one the
    prose beside it starts from. Frames are rendered at ``FRAME_DPI``.
    """
    try:
        figures, labels = list(figures), list(labels)
    except TypeError as err:
        raise ValueError("frames_slider needs a list of matplotlib figures and a list of labels") from err
    if not all(hasattr(fig, "savefig") for fig in figures):
        raise ValueError("figures must be matplotlib figures (plt.figure(), or ax.figure)")
    if len(figures) == 0 or len(figures) != len(labels):
        raise ValueError(f"frames_slider needs one label per figure and at least one figure, got "
                         f"{len(figures)} figures and {len(labels)} labels")
    if isinstance(start, bool) or not isinstance(start, int) or not -len(figures) <= start < len(figures):
        raise ValueError(f"start must be the index of one of the {len(figures)} frames, got {start!r}")
    start %= len(figures)
    images = []
    for fig in figures:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=FRAME_DPI, bbox_inches="tight")
        plt.close(fig)
        images.append(base64.b64encode(buf.getvalue()).decode())
    imgs = "".join(
        f'<img src="data:image/png;base64,{b}" alt="{name} = {lab}" '
        f'style="display:{"block" if i == start else "none"};max-width:100%">'
        for i, (b, lab) in enumerate(zip(images, labels)))
    last = len(images) - 1
    js = ("var b=this.closest('.seplib-frames');var im=b.querySelectorAll('img');"
          "im.forEach(function(e,i){e.style.display=(i==this.value)?'block':'none';},this);"
          f"b.querySelector('output').textContent=[{','.join(repr(str(l)) for l in labels)}][this.value];")
    return HTML(
        f'<div class="seplib-frames"><label>{name}: <input type="range" min="0" max="{last}" '
        f'value="{start}" step="1" oninput="{js}"> <output>{labels[start]}</output></label>{imgs}</div>')
