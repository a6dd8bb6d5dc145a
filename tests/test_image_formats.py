"""Every format and mode of image file is decoded one way
(dhe_tf.data.images.decode), into the 1 or 3 channels of a model, and fitted
to its input by dhe_tf.model.inference.decode_image, the decoder of the
export, the service and the search CLI. Real files, made with Pillow."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import image_samples
from dhe_tf.data import images
from dhe_tf.model import inference

GOOD = image_samples.good_files()


@pytest.mark.parametrize("name", sorted(GOOD))
def test_every_format_and_mode_decodes_to_grey_and_colour(name):
  data, grey, colour = GOOD[name]
  with Image.open(io.BytesIO(data)) as image:
    width, height = image.size
    pillow_rgb = np.asarray(image.convert("RGB"))
  as_grey = images.decode(data, 1).numpy()
  as_colour = images.decode(data, 3).numpy()
  assert as_grey.shape == (height, width, 1) and as_grey.dtype == np.uint8
  assert as_colour.shape == (height, width, 3)
  if grey is not None:  # Lossless grey files keep their exact pixels.
    np.testing.assert_array_equal(as_grey[..., 0], grey)
    np.testing.assert_array_equal(as_colour, np.repeat(grey[..., None], 3,
                                                       axis=-1))
  if colour is not None:  # Lossless colour files too; alpha is dropped.
    np.testing.assert_array_equal(as_colour, colour)
    np.testing.assert_array_equal(
        as_grey, tf.image.rgb_to_grayscale(colour).numpy())
  if name.endswith(".jpg"):  # Lossy: near what Pillow decodes (CMYK too).
    assert np.abs(as_colour.astype(int) - pillow_rgb).mean() < 3


def test_the_models_decoder_fits_every_format_to_its_input():
  # In a traced function, as the export's graph and the service run it.
  def decoder(shape, center_crop):
    return tf.function(
        lambda contents: inference.decode_image(contents, shape,
                                                center_crop=center_crop),
        input_signature=[tf.TensorSpec([], tf.string)])

  grey_model = decoder((28, 28, 1), False)
  grey_crops = decoder((24, 24, 1), True)  # An image-file model's rule.
  colour_crops = decoder((24, 24, 3), True)
  for name, (data, grey, colour) in GOOD.items():
    fitted = grey_model(data).numpy()
    assert fitted.shape == (28, 28, 1), name
    np.testing.assert_array_equal(
        fitted, images.fit_square(images.decode(data, 1), 28, 28).numpy())
    if grey is not None:  # 28 × 28: taken as it is.
      np.testing.assert_array_equal(fitted[..., 0], grey)
    crop = colour_crops(data).numpy()
    assert crop.shape == (24, 24, 3), name
    np.testing.assert_array_equal(
        grey_crops(data).numpy(), tf.image.rgb_to_grayscale(crop).numpy())
