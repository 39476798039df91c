from tinyllama_cli.units import si


def test_si_formats_as_each_table_expects():
    assert si(7_314_370_560, ".2f", " ", giga="G") == "7.31 G"  # models: FLOPs/token
    assert si(948_096, ".2f", " ", giga="G") == "948.10 k"
    assert si(512, ".2f", " ", giga="G") == "512"
    assert si(1_228_800, ".2f") == "1.23M"  # trainer: tokens seen
    assert si(3e12, ".3g", kilo="K") == "3T"  # eval: tokens seen
    assert si(2_460_000, ".3g", kilo="K") == "2.46M"
    assert si(40_960, ".3g", kilo="K") == "41K"
    assert si(12.5, ".3g", small_spec=".3g") == "12.5"  # plan: counts
    assert si(2.194e22, ".3f", " ", giga="G", unit="FLOP") == "21940000000.000 TFLOP"
    assert si(7.314e9, ".3f", " ", giga="G", unit="FLOP") == "7.314 GFLOP"
    assert si(512, ".3f", " ", giga="G", unit="FLOP") == "512 FLOP"
