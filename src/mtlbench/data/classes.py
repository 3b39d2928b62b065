"""The class names of the datasets whose classes a task file may group (tasks/<study>.yaml): data,
shared by the catalogue (studies.py) and the task-file reader (data/taskspec.py) without either
importing the other."""

DIGIT_NAMES = tuple(str(i) for i in range(10))
FASHION_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DATASET_CLASSES = {"digits": DIGIT_NAMES, "fashion": FASHION_NAMES, "cifar10": CIFAR10_NAMES}  # class-group task files
