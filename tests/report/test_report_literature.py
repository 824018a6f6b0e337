"""Cleaning the survey's results.csv, on rows copied verbatim from the real file."""

import io

import pandas as pd

from shrink.report.literature import COLUMNS, clean_results, load_literature

RAW = '''Name,Paper,Dataset,Model,Method,Notes,NumTrials,Err1,Err5,Top1,stdTop1,dTop1,Top5,dTop5,MParams,savedParams,keptParams,GFLOPS,savedFLOPS,keptFLOPS,OrigTop1,stdOrigTop1,OrigTop5,OrigMParams,OrigGFLOPS,old/new Nparam,old/new FLOPS,OrigErr1,OrigErr5
326,amc-automl-han,CIFAR-10,Plain-20,,,,,,,,,,,,,,,,,,,,,,,,,
327,amc-automl-han,CIFAR-10,ResNet-56,,,,,,91.90%,,,,,,,,,50.00%,,92.80%,,,,,,,,
329,amc-automl-han,ImageNet,VGG-16,,table3,,,,,,-1.400%,,,,80.00%,,,,,70.50%,,,,,,,,
90,apple-pfa,CIFAR-10,ResNet-56,PFA-En,"10 trials for all their results, but no stds/err bars",10,,,,,-0.180%,,,,,61.50%,,,69.90%,,,,,,,,,
122,bayesian-compression,MNIST,LeNet-300-100,,,,,,,,,,,,,,,,,,,,,,,,,
50,google-state-of-sparsity,ImageNet,ResNet-50,Magnitude-v2,"this is the net at end of sec 5.2, with 80% unstructured sparsity, which is apparently SotA acc/size tradeoff. Not gonna type in all their results CSVs..... Also note that they only report this one number, with no std or anything for this net. They call this ""magnitude pruning v2"" in figure 5, which is where I got the method name",,,,76.52%,,-0.170%,,,,80.00%,,,,,76.69%,,,,,,,,
512,learning-compression,CIFAR-10,ResNet-56,,"they cite ""Deep residual learning for image recognition.""",,6.92%,,,,,,,0.1273,,,,,,93.14%,,,0.850,,,,,
64,pcas,CIFAR-10,ResNet-56,,table1,,,,93.58%,,0.540%,,,0.3900,53.70%,,0.0560,54.80%,,,,,,,,,,
97,spectral-pruning,ImageNet,VGG-16,Spec-Conv,,,,,71.39%,,,90.63%,,114.6200,,,20.0200,,,68.34%,,88.44%,138.340,30.940,,,,
189,ssl,MNIST,fc500-300,,,,,,,,,,,,,,,,,,,,,,,,,
'''  # the header and rows of results.csv (its BOM left out)

NAN = float("nan")
EXPECTED = pd.DataFrame(
    [  # result_id, paper, dataset, model, method, compression, speedup, top1, orig_top1, delta_top1
        (327, "amc-automl-han", "cifar10", "resnet56", NAN, NAN, 2.0, 0.919, 0.928, -0.009),
        (90, "apple-pfa", "cifar10", "resnet56", "PFA-En", 1 / 0.615, 1 / 0.699, NAN, NAN, -0.0018),
        (512, "learning-compression", "cifar10", "resnet56", NAN, 0.85 / 0.1273, NAN, 0.9308, 0.9314, -0.0006),
        # pcas gives Top1 and dTop1 only: its baseline is Top1 - dTop1 = 93.04%, not 94.12%.
        (64, "pcas", "cifar10", "resnet56", NAN, 1 / (1 - 0.537), 1 / (1 - 0.548), 0.9358, 0.9304, 0.0054),
        (50, "google-state-of-sparsity", "imagenet", "resnet50", "Magnitude-v2", 5.0, NAN, 0.7652, 0.7669, -0.0017),
        # amc on VGG-16 gives the baseline and dTop1: its top-1 is 70.50% - 1.40% = 69.10%.
        (329, "amc-automl-han", "imagenet", "vgg16", NAN, 5.0, NAN, 0.691, 0.705, -0.014),
    ],
    columns=COLUMNS,
)


def test_cleaning_real_rows_maps_names_parses_numbers_and_derives_baselines():
    raw = pd.read_csv(io.StringIO(RAW))
    clean = clean_results(raw)
    expected = EXPECTED.astype({"method": clean["method"].dtype})
    pd.testing.assert_frame_equal(clean, expected, rtol=1e-6)


def test_packaged_data_is_the_cleaned_survey():
    data = load_literature()
    assert list(data.columns) == COLUMNS
    assert len(data) == 149 and data["result_id"].is_unique
    pcas = data.set_index("result_id").loc[64]
    assert (pcas["dataset"], pcas["model"], pcas["orig_top1"]) == ("cifar10", "resnet56", 0.9304)
    counts = data.groupby(["dataset", "model"])["paper"].nunique()
    papers = [counts[pair] for pair in (("cifar10", "resnet56"), ("imagenet", "vgg16"), ("imagenet", "resnet50"))]
    assert papers == [12, 12, 13]
