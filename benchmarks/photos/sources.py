"""Which pictures ``make_photos.py`` takes from which Debian package, and under which licence.

Each package's licence is what its ``usr/share/doc/PACKAGE/copyright`` file gives the files
taken (a stanza naming a picture overrides it: ``make_photos.file_licences``); the model card
(``vidcolor/weights/README.md``) lists them for the bundled model.
"""

# package: (trained on, the licence its copyright file gives pictures that name none of their
# own, the pictures' paths under usr/share as glob patterns)
PACKAGES = {
    "gnome-backgrounds": (True, "CC-BY-SA-3.0", ("**/*",)),
    "mate-backgrounds": (True, "GPL-2+", ("**/*",)),
    "plasma-workspace-wallpapers": (True, "GPL-2+", ("**/*",)),
    "ukui-wallpapers": (True, "CC-BY-SA-3.0", ("**/*",)),
    "lomiri-wallpapers-16.04": (False, "CC-BY-4.0", ("**/*",)),  # Ubuntu's community photographs
    "lomiri-wallpapers-20.04": (False, "CC-BY-SA-3.0", ("**/*",)),
    # Scratch 1.4's backdrops: photographs of rooms, streets, sports grounds and nature
    "scratch": (True, "CC-BY-SA-3.0", ("scratch/Media/Backgrounds/**/*",)),
    "tuxpaint-data": (True, "GPL-2+", ("tuxpaint/templates/**/*",)),  # photographs to draw over
}
# The pictures of those photograph packages that are digital art: scored as wallpapers.
NOT_PHOTOGRAPHS = {
    "umang_by_Abhishek_Mudgal",
    "Fossa_by_Jasper_Roks",
    "Painting-Colors_by__herobrine7gamer",
}
# package: (the folder under usr/share of its cut-outs, their licence as its copyright file
# says, the sub-folder left out: letters and signs teach no colour)
STAMPS = {
    "tuxpaint-stamps-default": ("tuxpaint/stamps", "GPL-2", "symbols"),
    "scratch": ("scratch/Media/Costumes", "CC-BY-SA-3.0", "Letters"),  # people, animals, things
}
# OpenCV's sample data (Debian's ``opencv-doc``; its copyright file gives the samples
# Apache-2.0 AND BSD-3-Clause): real photographs, never trained on (kind ``photographs``), and
# a live-action video to score on (``LIVE_ACTION``). Lena, the drawings, the renders, the
# charts and the gray ones are not listed.
OPENCV = ("opencv-doc", "Apache-2.0 AND BSD-3-Clause", "doc/opencv-doc/examples/data")
OPENCV_PHOTOS = (
    *("aero1.jpg", "aloeL.jpg", "apple.jpg", "baboon.jpg", "board.jpg", "building.jpg"),
    *("butterfly.jpg", "chicky_512.png", "ela_original.jpg", "fruits.jpg", "graf1.png"),
    *("home.jpg", "leuvenA.jpg", "licenseplate_motion.jpg", "messi5.jpg", "orange.jpg"),
    *("rubberwhale1.png", "smarties.png", "squirrel_cls.jpg"),
)
LIVE_ACTION = ("vtest.avi", "videos/live_action.avi")  # people walking by, a fixed camera
