"""The datasets minae knows: file names, mirrors, pinned checksums, licences.

Checksums of the .gz files are the SHA-256 values that tensorflow-datasets
publishes, with torchvision's MD5s as a cross-check. ``payload_sha256`` is the
SHA-256 of a file's *uncompressed* bytes: it identifies a dataset's content
even when a distributor recompressed the .gz (Debian does, and so do copies
made with ``gzip -9 -n``), and stops one dataset's files being loaded under
another's name or role. MNIST's match the published MD5s of the uncompressed
files; Fashion-MNIST's are those of Debian's dataset-fashion-mnist package,
whose .gz files wrap the canonical images. KMNIST's are not known here, so its
files are recognised by their .gz checksums only.
"""

from __future__ import annotations

from dataclasses import dataclass

# The four files every MNIST-style dataset ships, keyed by role.
ROLES = ("train_images", "train_labels", "test_images", "test_labels")
FILENAMES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
N_TRAIN, N_TEST, SIDE = 60_000, 10_000, 28


@dataclass(frozen=True)
class FileInfo:
    filename: str
    size: int      # bytes of the canonical .gz
    sha256: str    # of the canonical .gz
    md5: str       # of the canonical .gz
    payload_sha256: str | None = None   # of the uncompressed file, if known


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    title: str
    mirrors: tuple      # base URLs, best first; a file's URL is base + filename
    files: dict         # role -> FileInfo
    classes: tuple
    license: str
    attribution: str

    def describe(self):
        return f"{self.title} ({self.license}): {self.attribution}"


def _files(rows):
    return {role: FileInfo(FILENAMES[role], *row) for role, row in zip(ROLES, rows, strict=True)}


DATASETS = {
    "mnist": DatasetInfo(
        name="mnist",
        title="MNIST",
        # The original host (yann.lecun.com) has refused downloads since 2024.
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/"),
        files=_files([
            (9912422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
             "f68b3c2dcbeaaa9fbdd348bbdeb94873",
             "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
            (28881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
             "d53e105ee54ea40749a09fcbcd1e9432",
             "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
            (1648877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
             "9fb629c4189551a2d022fa330f9573f3",
             "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
            (4542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
             "ec29112dd5afa0611ce80d1b7f02629c",
             "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
        ]),
        classes=tuple(str(d) for d in range(10)),
        license="CC BY-SA 3.0",
        attribution="Yann LeCun, Corinna Cortes, Christopher J.C. Burges",
    ),
    "fashion-mnist": DatasetInfo(
        name="fashion-mnist",
        title="Fashion-MNIST",
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                 "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"),
        files=_files([
            (26421880, "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
             "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
             "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
            (29515, "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
             "25c81989df183df01b3e8a0aad5dffbe",
             "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
            (4422102, "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
             "bef4ecab320f06d8554ea6380940ec79",
             "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
            (5148, "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
             "bb300cfdad3c16e7a12a480ee83cd310",
             "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
        ]),
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"),
        license="MIT",
        attribution="Han Xiao, Kashif Rasul, Roland Vollgraf (Zalando Research)",
    ),
    "kmnist": DatasetInfo(
        name="kmnist",
        title="Kuzushiji-MNIST",
        mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        files=_files([
            (18165135, "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
             "bdb82020997e1d708af4cf47b453dcf7"),
            (29497, "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
             "e144d726b3acfaa3e44228e80efcd344"),
            (3041136, "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
             "5c965bf0a639b31b8f53240b1b52f4d7"),
            (5120, "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c",
             "7320c461ea6c1c855c0b718fb2a4b134"),
        ]),
        classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        license="CC BY-SA 4.0",
        attribution="Tarin Clanuwat et al., ROIS-DS Center for Open Data in the Humanities (CODH)",
    ),
}


def get_info(name) -> DatasetInfo:
    """The registry entry for ``name``; unknown names list the known ones."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return DATASETS[name]
