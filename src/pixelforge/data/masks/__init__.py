"""Semantic segmentation data: layouts (built-in, images/+masks/, VOC, COCO), 16-bit images, masks, augmentation."""
